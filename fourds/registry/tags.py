"""Names of the tags fourds writes on registered model versions besides the lineage record's
(``fourds.lineage.record``: ``fourds.<fact>`` and ``fourds.metric.<name>``)."""

KIND_TAG = "fourds.kind"
DOMAIN_TAG = "fourds.domain"
CLASSES_TAG = "fourds.classes"
ARCH_TAG = "fourds.arch"
STEM_TAG = "fourds.stem"
SOURCE_DOMAIN_TAG = "fourds.source_domain"
DATA_MD5_TAG = "fourds.data_domain_md5"  # LineageRecord.data_domain_md5: the data it was trained on
WEIGHTS_SHA256_TAG = "fourds.weights_sha256"
PREPROCESSING_TAG = "fourds.preprocessing"
