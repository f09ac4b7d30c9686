"""Target-domain data: ingest into the DVC-tracked folder, the per-image table, splits and
label budgets, Great Expectations validation, demo domains and torch datasets.

Modules: ``sources`` (folders, manifests, archives, URLs), ``table`` (``images.csv``,
``split_for``, ``labelled_subset``), ``versioning`` (DVC and git facts), ``ingest``,
``validation``, ``datasets``, ``demo``. The main names are importable from here too;
each module is imported on first use, so that ingesting does not import torch and
training does not import Great Expectations.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DataSourceError": "fourds.data.sources",
    "IngestResult": "fourds.data.ingest",
    "ingest_domain": "fourds.data.ingest",
    "TABLE_COLUMNS": "fourds.data.table",
    "ImageTableError": "fourds.data.table",
    "read_image_table": "fourds.data.table",
    "split_for": "fourds.data.table",
    "labelled_subset": "fourds.data.table",
    "image_folder_table": "fourds.data.table",
    "DataVersion": "fourds.data.versioning",
    "DataVersionError": "fourds.data.versioning",
    "data_version": "fourds.data.versioning",
    "DataValidationError": "fourds.data.validation",
    "ExpectationFailure": "fourds.data.validation",
    "ValidationReport": "fourds.data.validation",
    "validate_table": "fourds.data.validation",
    "validate_domain": "fourds.data.validation",
    "ImageTableDataset": "fourds.data.datasets",
    "UnlabelledImageDataset": "fourds.data.datasets",
    "unlabelled_dataset": "fourds.data.datasets",
    "UNLABELLED_TARGET": "fourds.data.datasets",
    "SPLITS": "fourds.data.sources",
    "UNLABELLED_SPLIT": "fourds.data.sources",
    "unlabelled_rows": "fourds.data.table",
    "split_rows": "fourds.data.table",
    "DomainSplits": "fourds.data.datasets",
    "domain_splits": "fourds.data.datasets",
    "build_transforms": "fourds.data.datasets",
    "DEMO_CLASSES": "fourds.data.demo",
    "generate_demo_domains": "fourds.data.demo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fourds.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
