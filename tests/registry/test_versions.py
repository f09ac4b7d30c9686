import json
from pathlib import Path

import mlflow
import numpy as np
import onnxruntime
import pytest
import torch
from mlflow import MlflowClient

from fourds.config import RunConfig
from fourds.hashing import file_sha256
from fourds.inference import ImagePreprocessing, ModelInputError, OnnxImageClassifier
from fourds.lineage.record import LineageRecord
from fourds.models.weights import WeightsError, save_classifier
from fourds.models.zoo import build_classifier
from fourds.registry.aliases import alias_version
from fourds.registry.errors import RegistryError
from fourds.registry.versions import (
    import_teacher,
    load_onnx_classifier,
    load_student,
    load_teacher,
    register_student,
    register_teacher,
)
from fourds.registry.promotion import gate_metrics
from fourds.tracking.store import experiment_for_domain

CLASSES = ["zero", "one", "two"]  # those of the make_onnx classifiers
TEACHER_ARCH = "squeezenet1_1"  # the smallest torchvision classifier: fast to build and save


def _lineage(**changes) -> LineageRecord:
    facts = dict(
        method="4ds",
        data_domain_md5="aa.dir",
        data_md5="bb.dir",
        table_sha256="c" * 64,
        teacher_model_name="fourds-teacher",
        teacher_version="1",
        code_commit="f00d",
        config_hash="1" * 64,
        gx_success=True,
        gx_result_uri="file:///gx.json",
    )
    return LineageRecord(**{**facts, **changes})


def _student_weights(path: Path) -> Path:
    """A real student weights file (any torchvision arch works; the smallest keeps the test fast)."""
    return save_classifier(build_classifier(TEACHER_ARCH, len(CLASSES)), path, arch=TEACHER_ARCH, classes=CLASSES)


def _plot(path: Path) -> Path:
    path.write_bytes(b"\x89PNG not really")
    return path


def test_register_student_logs_onnx_weights_plots_and_lineage(workspace, make_onnx, tmp_path):
    exported = make_onnx()
    metrics = gate_metrics(test_accuracy=0.9, source_teacher_accuracy=0.4, parity_max_abs_diff=1e-7,
                           latency_ms_batch1=0.3, size_mb=exported.size_mb)
    experiment_for_domain("usps")
    with mlflow.start_run() as run:
        registered = register_student(
            "usps",
            onnx_path=exported.path,
            weights_path=_student_weights(tmp_path / "trained.safetensors"),
            lineage=_lineage(zenml_run_id="zenml-1", onnx_sha256=exported.sha256),
            metrics=metrics,
            plots=[_plot(tmp_path / "confusion.png")],
        )

    assert (registered.model_name, registered.version) == ("fourds-student-usps", "1")
    assert alias_version("fourds-student-usps", "challenger") == "1"
    assert alias_version("fourds-student-usps", "champion") is None  # only the policy moves champion

    tags = MlflowClient().get_model_version("fourds-student-usps", "1").tags
    assert tags["fourds.onnx_sha256"] == exported.sha256
    assert tags["fourds.mlflow_run_id"] == run.info.run_id
    assert tags["fourds.zenml_run_id"] == "zenml-1" and tags["fourds.gx_success"] == "true"
    assert tags["fourds.domain"] == "usps" and tags["fourds.kind"] == "student"
    assert json.loads(tags["fourds.classes"]) == CLASSES and tags["fourds.arch"] == TEACHER_ARCH
    assert float(tags["fourds.metric.test_accuracy"]) == 0.9
    assert float(tags["fourds.metric.source_teacher_test_accuracy"]) == 0.4
    description = MlflowClient().get_model_version("fourds-student-usps", "1").description
    assert description.startswith("**usps** student, method **4ds**") and "Promotion: not decided yet" in description
    assert LineageRecord.from_tags(tags).data_md5 == "bb.dir"

    folder = Path(mlflow.artifacts.download_artifacts(registered.uri, dst_path=str(tmp_path / "download")))
    files = folder / "data" / "classifier"
    assert file_sha256(files / "model.onnx") == exported.sha256  # the very file that was checked
    assert (files / "student.safetensors").is_file()
    assert sorted(p.name for p in folder.rglob("*.onnx")) == ["model.onnx"]  # one ONNX file: the audit re-hashes it
    session = onnxruntime.InferenceSession(str(files / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"images": np.zeros((5, 3, 4, 4), np.float32)})[0].shape == (5, 3)
    assert json.loads(tags["fourds.preprocessing"]) == {
        "image_size": 4, "resize_size": 4, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "channel_order": "RGB",
        "layout": "NCHW", "interpolation": "bilinear", "pixel_divisor": 255.0}
    plots = [a.path for a in MlflowClient().list_artifacts(run.info.run_id, "plots")]
    assert plots == ["plots/confusion.png"]


def test_a_registered_student_predicts_through_mlflow_pyfunc(workspace, make_onnx, tmp_path):
    """The champion loads with plain MLflow and classifies a uint8 image batch, as the README shows."""
    exported = make_onnx()
    experiment_for_domain("usps")
    with mlflow.start_run():
        registered = register_student("usps", onnx_path=exported.path,
                                      weights_path=_student_weights(tmp_path / "w.safetensors"), lineage=_lineage(),
                                      metrics={"test_accuracy": 0.9})
    MlflowClient().set_registered_model_alias(registered.model_name, "champion", registered.version)
    images = np.random.default_rng(0).integers(0, 256, (6, 9, 7, 3), dtype=np.uint8)  # any size: resized

    model = mlflow.pyfunc.load_model("models:/fourds-student-usps@champion")
    predicted = model.predict(images)

    expected = OnnxImageClassifier(exported.path).probabilities(images)
    assert list(predicted.columns) == ["label", "label_index", "probability"]
    assert predicted["label"].tolist() == [CLASSES[i] for i in expected.argmax(axis=1)]
    assert np.allclose(predicted["probability"], expected.max(axis=1))
    assert model.metadata.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, -1, -1, 3)
    assert model.metadata.metadata["preprocessing"]["image_size"] == 4
    assert model.metadata.metadata["classes"] == CLASSES


def test_a_student_onnx_without_its_preprocessing_is_refused(workspace, make_onnx, tmp_path):
    import onnx

    bare = tmp_path / "bare.onnx"
    proto = onnx.load(str(make_onnx().path))
    del proto.metadata_props[:]
    onnx.save_model(proto, str(bare))
    experiment_for_domain("usps")
    with mlflow.start_run(), pytest.raises(RegistryError, match="does not record its preprocessing"):
        register_student("usps", onnx_path=bare, weights_path=_student_weights(tmp_path / "w.safetensors"),
                         lineage=_lineage())


def test_each_registration_adds_a_version_and_moves_challenger(workspace, make_onnx, tmp_path):
    weights = _student_weights(tmp_path / "w.safetensors")
    experiment_for_domain("usps")
    for seed in (0, 1):
        with mlflow.start_run():
            register_student("usps", onnx_path=make_onnx(f"s{seed}.onnx", seed).path, weights_path=weights,
                             lineage=_lineage(), metrics={"test_accuracy": 0.5})
    assert alias_version("fourds-student-usps", "challenger") == "2"


def test_register_teacher_checks_the_callers_expectations(workspace, teacher_file):
    experiment_for_domain("mnist")
    with mlflow.start_run(), pytest.raises(WeightsError, match="only expected"):
        register_teacher(teacher_file, classes=["zero", "one", "three"], config=RunConfig())


def test_a_teacher_is_never_registered_with_a_guessed_preprocessing(workspace, teacher_file):
    """Weights do not say how their inputs were prepared: the caller's config or preprocessing must."""
    experiment_for_domain("mnist")
    with mlflow.start_run(), pytest.raises(RegistryError, match="needs the teacher's input preprocessing"):
        register_teacher(teacher_file, classes=CLASSES)
    assert MlflowClient().search_registered_models() == []

    given = ImagePreprocessing(image_size=28, resize_size=32, mean=(0.1, 0.2, 0.3), std=(0.3, 0.2, 0.1))
    with mlflow.start_run():
        registered = register_teacher(teacher_file, classes=CLASSES, preprocessing=given)
    assert ImagePreprocessing.from_json(registered.tags["fourds.preprocessing"]) == given


def test_a_student_whose_data_failed_validation_is_never_registered(workspace, make_onnx, tmp_path):
    weights = _student_weights(tmp_path / "w.safetensors")
    experiment_for_domain("usps")
    with mlflow.start_run(), pytest.raises(RegistryError, match="did not pass validation"):
        register_student("usps", onnx_path=make_onnx().path, weights_path=weights, lineage=_lineage(gx_success=False))
    assert MlflowClient().search_registered_models() == []


def test_register_student_refuses_a_changed_onnx_and_needs_a_run(workspace, make_onnx, tmp_path):
    weights = _student_weights(tmp_path / "w.safetensors")
    exported = make_onnx()
    lineage = _lineage(onnx_sha256=exported.sha256)
    with pytest.raises(RegistryError, match="active MLflow run"):
        register_student("usps", onnx_path=exported.path, weights_path=weights, lineage=lineage)

    make_onnx(seed=5)  # overwrites the checked file with another model
    experiment_for_domain("usps")
    with mlflow.start_run(), pytest.raises(RegistryError, match="changed since it was exported"):
        register_student("usps", onnx_path=exported.path, weights_path=weights, lineage=lineage)


# --- teachers ---------------------------------------------------------------------------------


@pytest.fixture
def teacher_file(tmp_path) -> Path:
    torch.manual_seed(0)
    model = build_classifier(TEACHER_ARCH, len(CLASSES))
    return save_classifier(model, tmp_path / "trained_teacher.safetensors", arch=TEACHER_ARCH, classes=CLASSES,
                           metadata={"data_md5": "src.dir"})


@pytest.fixture
def registered_teacher(workspace, teacher_file):
    experiment_for_domain("mnist")
    with mlflow.start_run():
        return register_teacher(teacher_file, classes=CLASSES, source_domain="mnist", data_md5="src.dir",
                                metrics={"test/teacher/accuracy": 0.99}, config=RunConfig())


def test_register_teacher_records_classes_arch_and_data(registered_teacher):
    assert registered_teacher.tags["fourds.config_hash"] == RunConfig().config_hash()
    assert registered_teacher.tags["fourds.metric.test/teacher/accuracy"] == "0.99"
    assert (registered_teacher.model_name, registered_teacher.version) == ("fourds-teacher", "1")
    tags = MlflowClient().get_model_version("fourds-teacher", "1").tags
    assert json.loads(tags["fourds.classes"]) == CLASSES
    assert (tags["fourds.arch"], tags["fourds.stem"], tags["fourds.kind"]) == (TEACHER_ARCH, "imagenet", "teacher")
    assert (tags["fourds.data_domain_md5"], tags["fourds.source_domain"]) == ("src.dir", "mnist")
    assert alias_version("fourds-teacher", "mnist") == "1"


def test_the_teacher_loads_through_mlflow_pyfunc_without_pickle(registered_teacher, teacher_file, tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (2, 40, 30, 3), dtype=np.uint8)

    model = mlflow.pyfunc.load_model("models:/fourds-teacher@mnist")
    predicted = model.predict(images)

    folder = Path(mlflow.artifacts.download_artifacts("models:/fourds-teacher/1", dst_path=str(tmp_path / "teacher")))
    stored = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert "data/classifier/teacher.safetensors" in stored
    assert not [name for name in stored if name.endswith((".pkl", ".pickle", ".pt", ".pth", ".cloudpickle"))]
    flavor = model.metadata.flavors["python_function"]
    assert flavor["loader_module"] == "fourds.inference.torch_classifier" and "python_model" not in flavor
    torch.manual_seed(0)  # as in the teacher_file fixture
    reference = build_classifier(TEACHER_ARCH, 3).eval()
    preprocessing = ImagePreprocessing.from_json(MlflowClient().get_model_version("fourds-teacher", "1")
                                                 .tags["fourds.preprocessing"])
    with torch.no_grad():
        expected = reference(torch.from_numpy(preprocessing.batch(images))).argmax(dim=1).tolist()
    assert predicted["label"].tolist() == [CLASSES[i] for i in expected]


@pytest.mark.parametrize("ref", ["fourds-teacher@mnist", "fourds-teacher/1", "models:/fourds-teacher/1", "1",
                                 "fourds-teacher"])
def test_load_teacher_by_alias_version_or_name(registered_teacher, teacher_file, ref):
    loaded = load_teacher(ref, classes=CLASSES)

    assert (loaded.model_name, loaded.version, loaded.arch, loaded.classes) == ("fourds-teacher", "1", TEACHER_ARCH,
                                                                               CLASSES)
    assert loaded.data_md5 == "src.dir" and loaded.source_domain == "mnist"
    assert LineageRecord(**loaded.lineage_facts()).teacher_version == "1"
    assert loaded.weights_sha256 == file_sha256(teacher_file)
    torch.manual_seed(0)  # as in the teacher_file fixture
    expected = build_classifier(TEACHER_ARCH, 3)
    for name, tensor in expected.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name


def test_load_teacher_from_a_weights_file(workspace, teacher_file):
    loaded = load_teacher(str(teacher_file), classes=CLASSES)
    assert loaded.model_name is None and loaded.version is None and loaded.arch == TEACHER_ARCH
    assert loaded.lineage_facts() == {
        "teacher_model_name": str(teacher_file),
        "teacher_version": f"sha256:{file_sha256(teacher_file)}",
        "teacher_data_md5": "src.dir",
    }
    with pytest.raises(RegistryError, match="weights file not found"):
        load_teacher(str(teacher_file.with_name("missing.safetensors")))


def test_load_teacher_shows_the_class_list_difference(registered_teacher, teacher_file):
    with pytest.raises(WeightsError, match=r"fourds-teacher version 1 holds different class names.*\['two'\].*\['2'\]"):
        load_teacher("fourds-teacher@mnist", classes=["zero", "one", "2"])
    with pytest.raises(WeightsError, match="another order"):
        load_teacher(str(teacher_file), classes=["one", "zero", "two"])


def test_load_teacher_names_unknown_models_aliases_and_versions(registered_teacher):
    with pytest.raises(RegistryError, match="no registered model named 'fourds-teachr'.*; registered models: fourds-teacher"):
        load_teacher("fourds-teachr@mnist")
    with pytest.raises(RegistryError, match=r"fourds-teacher has no alias 'usps'; its aliases: mnist -> 1"):
        load_teacher("fourds-teacher@usps")
    with pytest.raises(RegistryError, match="fourds-teacher has no version 7; its versions: 1"):
        load_teacher("fourds-teacher/7")


def test_import_teacher_from_a_torch_state_dict(workspace, tmp_path):
    torch.manual_seed(1)
    model = build_classifier(TEACHER_ARCH, 3)
    state_path = tmp_path / "colleague.pt"
    torch.save(model.state_dict(), state_path)

    with pytest.raises(WeightsError, match="pass arch="):
        import_teacher(state_path, classes=CLASSES, config=RunConfig())
    registered = import_teacher(state_path, arch=TEACHER_ARCH, classes=CLASSES, config=RunConfig())

    tags = MlflowClient().get_model_version("fourds-teacher", registered.version).tags
    assert tags["fourds.imported_sha256"] == file_sha256(state_path)
    assert tags["fourds.imported_from"] == str(state_path.resolve())
    run = MlflowClient().get_run(registered.run_id)
    assert MlflowClient().get_experiment(run.info.experiment_id).name == "fourds-imported-teachers"
    loaded = load_teacher(f"fourds-teacher/{registered.version}", classes=CLASSES)
    assert torch.equal(loaded.model.state_dict()["classifier.1.weight"], model.state_dict()["classifier.1.weight"])


# --- loading a registered student: what it records wins, malformed records are errors -------------


def _registered_student(make_onnx, tmp_path, **tags) -> tuple[str, Path]:
    """A registered student version and the folder its files are stored in (to age or damage them)."""
    experiment_for_domain("usps")
    with mlflow.start_run():
        registered = register_student("usps", onnx_path=make_onnx().path,
                                      weights_path=_student_weights(tmp_path / "w.safetensors"), lineage=_lineage())
    for key, value in tags.items():
        MlflowClient().set_model_version_tag(registered.model_name, registered.version, key, value)
    stored = MlflowClient().get_model_version_download_uri(registered.model_name, registered.version)
    return f"{registered.model_name}/{registered.version}", Path(stored.removeprefix("file://")) / "data" / "classifier"


def _rewrite_onnx_metadata(onnx_path: Path, **props) -> None:
    """Set (a value) or remove (None) ONNX ``metadata_props``, keys given with ``_`` for ``.``."""
    import onnx

    proto = onnx.load(str(onnx_path))
    kept = {prop.key: prop.value for prop in proto.metadata_props}
    for key, value in props.items():
        kept.pop(key.replace("_", "."), None)
        if value is not None:
            kept[key.replace("_", ".")] = value
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, kept)
    onnx.save_model(proto, str(onnx_path))


FALLBACK = ImagePreprocessing(image_size=4, resize_size=6, mean=(0.4, 0.4, 0.4), std=(0.2, 0.2, 0.2))


def test_a_student_exported_before_its_preprocessing_was_recorded_falls_back_with_a_warning(
    workspace, make_onnx, tmp_path
):
    reference, stored = _registered_student(make_onnx, tmp_path)
    _rewrite_onnx_metadata(stored / "model.onnx", fourds_preprocessing=None)
    warnings = []

    classifier, loaded = load_onnx_classifier(reference, fallback_preprocessing=FALLBACK, warn=warnings.append)

    assert loaded == "models:/fourds-student-usps/1"
    assert classifier.preprocessing == FALLBACK and classifier.classes == CLASSES
    assert warnings == [
        "fourds-student-usps version 1 does not record its preprocessing (exported before fourds recorded it); "
        "assuming: resize the shorter side to 6, centre crop 4x4, normalise with mean [0.4, 0.4, 0.4] and std "
        "[0.2, 0.2, 0.2]"
    ]
    with pytest.warns(UserWarning, match="fourds-student-usps version 1 does not record its preprocessing"):
        load_onnx_classifier(reference, fallback_preprocessing=FALLBACK)  # a library caller is told too
    with pytest.raises(ModelInputError, match="version 1 does not record its preprocessing"):
        load_onnx_classifier(reference)  # no fallback: refused


@pytest.mark.parametrize("recorded", ["{not json", '{"image_size": 4}', '["a list"]', "7"])
def test_malformed_recorded_preprocessing_is_an_error_naming_the_model_never_a_fallback(
    workspace, make_onnx, tmp_path, recorded
):
    reference, stored = _registered_student(make_onnx, tmp_path)
    _rewrite_onnx_metadata(stored / "model.onnx", fourds_preprocessing=recorded)
    warnings = []

    with pytest.raises(ModelInputError, match="fourds-student-usps version 1 records a malformed preprocessing"):
        load_onnx_classifier(reference, fallback_preprocessing=FALLBACK, warn=warnings.append)
    assert warnings == []


def test_malformed_class_names_are_an_error_naming_the_model(workspace, make_onnx, tmp_path):
    reference, stored = _registered_student(make_onnx, tmp_path)
    _rewrite_onnx_metadata(stored / "model.onnx", fourds_classes="zero,one,two")
    with pytest.raises(ModelInputError,
                       match=r"fourds-student-usps version 1 \(metadata 'fourds.classes'\) records malformed class"):
        load_onnx_classifier(reference)

    # An old export without class names takes the version's class tag; a malformed tag is an error too.
    _rewrite_onnx_metadata(stored / "model.onnx", fourds_classes=None)
    assert load_onnx_classifier(reference)[0].classes == CLASSES
    MlflowClient().set_model_version_tag("fourds-student-usps", "1", "fourds.classes", "[zero")
    with pytest.raises(ModelInputError, match=r"version 1 \(tag fourds.classes\) records malformed class names"):
        load_onnx_classifier(reference)


def test_load_student_names_the_version_in_every_error(workspace, make_onnx, tmp_path, registered_teacher):
    reference, stored = _registered_student(make_onnx, tmp_path, **{"fourds.preprocessing": "{oops"})
    with pytest.raises(ModelInputError, match="fourds-student-usps version 1 records a malformed preprocessing"):
        load_student(reference)
    with pytest.raises(RegistryError, match="fourds-teacher version 1 is a teacher, not a student"):
        load_student("fourds-teacher/1")
    (stored / "student.safetensors").write_bytes(b"truncated")
    with pytest.raises(WeightsError, match="^fourds-student-usps version 1 is not a readable safetensors file"):
        load_student(reference)
