"""Students and teachers in the MLflow model registry: what a version holds and how to find it again.

Every registered version is an MLflow ``python_function`` model that classifies a batch
of uint8 RGB images by itself (``mlflow.pyfunc.load_model(uri).predict(images)``; the
signature and an input example are stored with it), because the preprocessing and the
class names travel with it.

* Students: one registered model per domain, ``<student_model_prefix><domain>``. A version
  holds ``data/classifier/model.onnx`` (byte-identical to the exported, parity-checked
  file, whose ``metadata_props`` record the preprocessing and class names) and the
  PyTorch weights beside it (``data/classifier/student.safetensors``); its pyfunc loader
  is :mod:`fourds.inference.onnx_classifier`, stored in the model as
  ``code/fourds_onnx_classifier.py`` (needs numpy, Pillow, onnxruntime, pandas; not
  fourds). Tagged with every lineage fact (:class:`~fourds.lineage.record.LineageRecord`).
  Each new version gets the alias ``challenger``; ``champion`` is the promotion policy's to move.
* Teachers: one registered model (``TrackingConfig.teacher_model_name``); a version holds
  ``data/classifier/teacher.safetensors`` (weights + arch, classes, stem in its header)
  and ``preprocessing.json``, with :mod:`fourds.inference.torch_classifier` as its pyfunc
  loader (needs fourds installed), tagged with the class list and the DVC md5 of the
  data it was trained on. A teacher trained on source domain ``mnist`` also gets the
  alias ``mnist``.

No pickle anywhere: weights are safetensors, models are ONNX, loaders are plain modules.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import onnx
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema, TensorSpec
from torch import nn

from fourds.config import RunConfig, TrackingConfig
from fourds.hashing import file_sha256
from fourds.inference import onnx_classifier, preprocessing_for, torch_classifier
from fourds.inference.onnx_classifier import (
    CLASSES_KEY,
    ONNX_FILE,
    PREPROCESSING_KEY,
    ImagePreprocessing,
    ModelInputError,
    OnnxImageClassifier,
    parse_class_names,
)
from fourds.lineage.record import MISSING_TAG, LineageRecord, code_commit
from fourds.models.weights import (
    SAFETENSORS_SUFFIXES,
    TORCH_SUFFIXES,
    ClassifierInfo,
    WeightsError,
    load_classifier,
    save_classifier,
)
from fourds.registry.aliases import (
    CHALLENGER,
    CHAMPION,
    current_user,
    get_model_version,
    get_registered_model,
    move_alias,
)
from fourds.registry.errors import RegistryError
from fourds.registry.promotion import version_description
from fourds.registry.tags import (
    ARCH_TAG,
    CLASSES_TAG,
    DATA_MD5_TAG,
    DOMAIN_TAG,
    KIND_TAG,
    PREPROCESSING_TAG,
    SOURCE_DOMAIN_TAG,
    STEM_TAG,
    WEIGHTS_SHA256_TAG,
)
from fourds.tracking.store import experiment_for_domain

STUDENT_MODEL = "student"
"""Artifact path of a student's MLflow model in its run."""
STUDENT_WEIGHTS_FILE = "student.safetensors"
STUDENT_LOADER_MODULE = "fourds_onnx_classifier"
"""A student's pyfunc loader: :mod:`fourds.inference.onnx_classifier`, stored in the model's ``code/``."""
TEACHER_MODEL = "teacher"
TEACHER_WEIGHTS_FILE = torch_classifier.WEIGHTS_FILE
TEACHER_PREPROCESSING_FILE = torch_classifier.PREPROCESSING_FILE
TEACHER_LOADER_MODULE = "fourds.inference.torch_classifier"
CLASSIFIER_DATA_DIR = "classifier"
"""The folder of a registered model's files (``<model>/data/classifier/``)."""
IMAGE_BATCH_INPUT = (
    "uint8 RGB images, shape (N, H, W, 3), any H and W (resized and centre-cropped as recorded in 'preprocessing'); "
    "output: one row per image with label, label_index and probability"
)
IMPORTED_TEACHERS_DOMAIN = "imported-teachers"


@dataclass(frozen=True)
class RegisteredModelVersion:
    """A version just written to the registry."""

    model_name: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str]

    @property
    def uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"


@dataclass
class LoadedTeacher:
    """A frozen teacher ready to use, and where it came from (for the lineage tags)."""

    model: nn.Module
    arch: str
    classes: list[str]
    stem: str
    reference: str
    """What was asked for: ``fourds-teacher@mnist``, ``fourds-teacher/3``, a file path."""
    model_name: str | None
    """Registered name; None for a weights file."""
    version: str | None
    """Registry version; None for a weights file."""
    weights_sha256: str
    data_md5: str | None
    """DVC md5 of the data the teacher was trained on, when recorded."""
    source_domain: str | None

    def lineage_facts(self) -> dict[str, str | None]:
        """The teacher fields of a student's :class:`LineageRecord` (``LineageRecord(**facts, ...)``).

        A weights file is named by its path and versioned by its content: ``sha256:<hex>``.
        """
        return {
            "teacher_model_name": self.model_name or self.reference,
            "teacher_version": self.version or f"sha256:{self.weights_sha256}",
            "teacher_data_md5": self.data_md5,
        }


def student_model_name(domain: str, tracking: TrackingConfig | None = None) -> str:
    return f"{(tracking or TrackingConfig()).student_model_prefix}{domain}"


def register_student(
    domain: str,
    *,
    onnx_path: str | Path,
    weights_path: str | Path,
    lineage: LineageRecord,
    metrics: dict[str, float] | None = None,
    plots: Sequence[str | Path] = (),
    tracking: TrackingConfig | None = None,
) -> RegisteredModelVersion:
    """Log the student to the active MLflow run and register it as a new ``challenger`` version.

    ``weights_path`` is the student's safetensors file (its header gives arch, classes and
    stem); ``onnx_path`` the exported, parity-checked ONNX file, whose sha256 must still be
    ``lineage.onnx_sha256`` and whose metadata must record its preprocessing and the same
    class names (:func:`fourds.export.onnx.classifier_metadata`). Refuses (RegistryError) a
    student whose data did not pass validation. ``metrics`` are merged into
    ``lineage.metrics``; the promotion gates read them from the version's tags (names:
    ``fourds.registry.promotion.gate_metrics``). ``plots`` are logged under ``plots/``
    (the pipeline leaves them out: its evaluation step logged them already).
    """
    run = mlflow.active_run()
    if run is None:
        raise RegistryError("register_student needs an active MLflow run: call it inside `with mlflow.start_run():`")
    if lineage.gx_success is not True:
        raise RegistryError(
            f"refusing to register a student for {domain!r}: its data did not pass validation "
            f"(gx_success={lineage.gx_success}, report: {lineage.gx_result_uri or 'unknown'})"
        )
    if lineage.domain not in (None, domain):
        raise RegistryError(f"lineage is for domain {lineage.domain!r} but the student is registered for {domain!r}")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise RegistryError(f"student ONNX file not found: {onnx_path}")
    onnx_sha256 = file_sha256(onnx_path)
    if lineage.onnx_sha256 not in (None, onnx_sha256):
        raise RegistryError(
            f"{onnx_path} changed since it was exported and checked (sha256 now {onnx_sha256[:12]}..., "
            f"recorded {lineage.onnx_sha256[:12]}...): export it again"
        )
    weights_path = _existing_weights_file(weights_path, suffixes=SAFETENSORS_SUFFIXES, role="student")
    _, info = load_classifier(weights_path)  # proves the weights load, and reads what they are
    merged_metrics = {**lineage.metrics, **(metrics or {})}
    not_finite = sorted(name for name, value in merged_metrics.items() if not math.isfinite(value))
    if not_finite:
        raise RegistryError(f"student metrics must be finite numbers; not finite: {', '.join(not_finite)}")

    lineage = replace(
        lineage, domain=domain, onnx_sha256=onnx_sha256, mlflow_run_id=run.info.run_id, metrics=merged_metrics
    )
    proto = onnx.load(str(onnx_path))
    preprocessing = _recorded_preprocessing(onnx_path, info.classes)
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / CLASSIFIER_DATA_DIR
        data.mkdir()
        shutil.copyfile(onnx_path, data / ONNX_FILE)  # byte-identical: the sha256 in the lineage stays true
        shutil.copyfile(weights_path, data / STUDENT_WEIGHTS_FILE)
        logged = mlflow.pyfunc.log_model(
            name=STUDENT_MODEL,
            loader_module=STUDENT_LOADER_MODULE,
            data_path=str(data),
            code_paths=[str(_student_loader_copy(Path(scratch)))],
            signature=image_batch_signature(),
            input_example=example_image_batch(preprocessing),
            pip_requirements=_requirements("onnxruntime", "numpy", "pillow", "pandas"),
            metadata={
                "classes": info.classes,
                "arch": info.arch,
                "stem": info.stem,
                "domain": domain,
                "preprocessing": preprocessing.to_dict(),
                "input": IMAGE_BATCH_INPUT,
            },
        )
    for plot in plots:
        mlflow.log_artifact(str(plot), artifact_path="plots")

    tags = {
        **lineage.to_tags(),
        KIND_TAG: "student",
        ARCH_TAG: info.arch,
        STEM_TAG: info.stem,
        CLASSES_TAG: json.dumps(info.classes),
        PREPROCESSING_TAG: preprocessing.to_json(),
        "fourds.onnx_opset": str(_declared_opset(proto)),
        "fourds.onnx_size_bytes": str(onnx_path.stat().st_size),
    }
    model_name = student_model_name(domain, tracking)
    _ensure_registered_model(
        model_name,
        tags={KIND_TAG: "student", DOMAIN_TAG: domain},
        description=(
            f"fourds students for the domain {domain!r}: MLflow pyfunc models (ONNX + safetensors) that take a "
            "uint8 RGB image batch; `models:/<name>@champion` serves the domain. See docs/REGISTRY.md"
        ),
    )
    version = mlflow.register_model(logged.model_uri, model_name, tags=tags)
    MlflowClient().update_model_version(model_name, version.version, description=version_description(tags))
    move_alias(model_name, CHALLENGER, version.version, who=current_user(), reason="new version registered")
    return RegisteredModelVersion(model_name, str(version.version), run.info.run_id, version.source, tags)


def register_teacher(
    weights_path: str | Path,
    *,
    arch: str | None = None,
    classes: list[str] | None = None,
    stem: str | None = None,
    source_domain: str | None = None,
    data_md5: str | None = None,
    metrics: dict[str, float] | None = None,
    config: RunConfig | None = None,
    extra_tags: dict[str, str] | None = None,
    preprocessing: ImagePreprocessing | None = None,
    lineage: LineageRecord | None = None,
) -> RegisteredModelVersion:
    """Log a teacher to the active run as an MLflow pyfunc model and register it as a new teacher version.

    ``lineage``: what the training run knows about the teacher's data and validation (git
    revision, GX outcome, orchestrator run id); this function adds the data md5, code commit,
    config hash, MLflow run and metrics, and writes the whole record as tags.

    The file's header must describe it (``save_classifier`` writes arch, classes, stem);
    ``arch``/``classes``/``stem``, when given, are checked against it. ``config`` names
    the registered model (``tracking.teacher_model_name``), its hash is recorded and its
    ``data`` section gives the input preprocessing unless ``preprocessing`` is given; one of
    the two is required (RegistryError), since the weights do not say how their inputs were
    prepared and a guessed preprocessing would be recorded as a fact. The
    model is the safetensors file plus ``preprocessing.json`` with
    :mod:`fourds.inference.torch_classifier` as its loader: no pickle. A teacher with a
    ``source_domain`` also gets that domain as an alias (``fourds-teacher@mnist``).
    """
    run = mlflow.active_run()
    if run is None:
        raise RegistryError("register_teacher needs an active MLflow run: call it inside `with mlflow.start_run():`")
    if preprocessing is None and config is None:
        raise RegistryError(
            "register_teacher needs the teacher's input preprocessing: pass config= (its data section: image size, "
            "resize, normalisation) or preprocessing="
        )
    weights_path = _existing_weights_file(weights_path, suffixes=SAFETENSORS_SUFFIXES, role="teacher")
    _, info = load_classifier(weights_path, arch=arch, classes=classes, stem=stem)
    model_name = (config.tracking if config else TrackingConfig()).teacher_model_name
    preprocessing = preprocessing or preprocessing_for(config.data)

    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / CLASSIFIER_DATA_DIR
        data.mkdir()
        shutil.copyfile(weights_path, data / TEACHER_WEIGHTS_FILE)
        (data / TEACHER_PREPROCESSING_FILE).write_text(preprocessing.to_json() + "\n")
        logged = mlflow.pyfunc.log_model(
            name=TEACHER_MODEL,
            loader_module=TEACHER_LOADER_MODULE,
            data_path=str(data),
            signature=image_batch_signature(),
            input_example=example_image_batch(preprocessing),
            pip_requirements=_requirements("torch", "torchvision", "safetensors", "numpy", "pillow", "pandas"),
            metadata={
                "classes": info.classes,
                "arch": info.arch,
                "stem": info.stem,
                "source_domain": source_domain,
                "preprocessing": preprocessing.to_dict(),
                "input": IMAGE_BATCH_INPUT,
                "needs": "fourds installed (loader module fourds.inference.torch_classifier)",
            },
        )

    facts = replace(
        lineage or LineageRecord(),
        data_domain_md5=data_md5,
        code_commit=code_commit(),
        config_hash=config.config_hash() if config else None,
        mlflow_run_id=run.info.run_id,
        metrics=dict(metrics or {}),
    ).to_tags()
    facts.pop(MISSING_TAG, None)  # the list of missing facts is about students
    tags = {
        **facts,
        KIND_TAG: "teacher",
        ARCH_TAG: info.arch,
        CLASSES_TAG: json.dumps(info.classes),
        STEM_TAG: info.stem,
        PREPROCESSING_TAG: preprocessing.to_json(),
        WEIGHTS_SHA256_TAG: file_sha256(weights_path),
        **({SOURCE_DOMAIN_TAG: source_domain} if source_domain else {}),
        **(extra_tags or {}),
    }
    _ensure_registered_model(
        model_name,
        tags={KIND_TAG: "teacher"},
        description=(
            "fourds frozen teachers: MLflow pyfunc models (safetensors with arch, classes and stem, no pickle) "
            "that take a uint8 RGB image batch; see docs/REGISTRY.md"
        ),
    )
    version = mlflow.register_model(logged.model_uri, model_name, tags=tags)
    accuracy = (metrics or {}).get("test/teacher/accuracy")
    MlflowClient().update_model_version(
        model_name,
        version.version,
        description=(
            f"Teacher {info.arch} for {len(info.classes)} classes"
            + (f", trained on {source_domain!r}" if source_domain else "")
            + (f"; test accuracy on its own domain {accuracy:.4f}" if accuracy is not None else "")
            + "."
        ),
    )
    domain_alias = _alias_for_domain(source_domain)
    if domain_alias:
        move_alias(
            model_name,
            domain_alias,
            version.version,
            who=current_user(),
            reason=f"latest teacher trained on {source_domain}",
        )
    return RegisteredModelVersion(model_name, str(version.version), run.info.run_id, version.source, tags)


def import_teacher(
    weights_path: str | Path,
    *,
    arch: str | None = None,
    classes: list[str] | None = None,
    stem: str | None = None,
    source_domain: str | None = None,
    data_md5: str | None = None,
    config: RunConfig,
) -> RegisteredModelVersion:
    """Register an existing weights file (safetensors, or a torch ``weights_only`` state dict) as a teacher.

    A plain state dict says nothing about itself, so ``arch`` and ``classes`` are needed
    for it; for a safetensors file they are checked against its header. The version
    stores the weights re-saved as safetensors with that description, and records the
    original file's path and sha256. ``config``'s ``data`` section is the preprocessing
    recorded with the teacher (the weights do not say how their inputs were prepared), and
    it names the registered model. Runs inside the active MLflow run, or opens one in the
    ``<experiment_prefix><source_domain or "imported-teachers">`` experiment.
    """
    weights_path = _existing_weights_file(weights_path, suffixes=SAFETENSORS_SUFFIXES + TORCH_SUFFIXES, role="teacher")
    model, info = load_classifier(weights_path, arch=arch, classes=classes, stem=stem)
    if data_md5 is None:
        data_md5 = info.metadata.get("data_md5")
    imported = {"fourds.imported_from": str(weights_path.resolve()), "fourds.imported_sha256": file_sha256(weights_path)}
    with tempfile.TemporaryDirectory() as scratch:
        normalised = save_classifier(
            model,
            Path(scratch) / TEACHER_WEIGHTS_FILE,
            arch=info.arch,
            classes=info.classes,
            stem=info.stem,
            metadata={**info.metadata, "imported_from": weights_path.name},
        )
        experiment = source_domain or IMPORTED_TEACHERS_DOMAIN
        with _active_or_new_run(experiment, f"import-teacher-{weights_path.stem}", config.tracking):
            return register_teacher(
                normalised, source_domain=source_domain, data_md5=data_md5, extra_tags=imported, config=config
            )


def load_teacher(ref: str, *, classes: list[str] | None = None, tracking: TrackingConfig | None = None) -> LoadedTeacher:
    """Load a frozen teacher from the registry or a weights file, checked against ``classes``.

    ``ref`` is ``name@alias``, ``name/<version>`` (``models:/`` prefix optional), a bare
    version number of the teacher model, a bare name (its latest version), or the path of
    a ``.safetensors``/``.pt``/``.pth`` file. A class list that differs from ``classes``
    raises :class:`~fourds.models.weights.WeightsError` showing the difference.
    """
    tracking = tracking or TrackingConfig()
    if _looks_like_file(ref):
        path = _existing_weights_file(ref, suffixes=SAFETENSORS_SUFFIXES + TORCH_SUFFIXES, role="teacher")
        model, info = load_classifier(path, classes=classes)
        return LoadedTeacher(
            model=model,
            arch=info.arch,
            classes=info.classes,
            stem=info.stem,
            reference=ref,
            model_name=None,
            version=None,
            weights_sha256=file_sha256(path),
            data_md5=info.metadata.get("data_md5"),
            source_domain=info.metadata.get("domain"),
        )

    registered = _load_registered_weights(ref, "teacher", default_name=tracking.teacher_model_name, classes=classes)
    version, info = registered.version, registered.info
    return LoadedTeacher(
        model=registered.model,
        arch=info.arch,
        classes=info.classes,
        stem=info.stem,
        reference=ref,
        model_name=version.name,
        version=str(version.version),
        weights_sha256=registered.weights_sha256,
        data_md5=version.tags.get(DATA_MD5_TAG),
        source_domain=version.tags.get(SOURCE_DOMAIN_TAG),
    )


@dataclass
class LoadedStudent:
    """A registered student's PyTorch weights, with the preprocessing its version records."""

    model: nn.Module
    arch: str
    classes: list[str]
    stem: str
    model_name: str
    version: str
    preprocessing: ImagePreprocessing | None
    """None for a version registered before fourds recorded it (tag ``fourds.preprocessing``)."""


def load_student(ref: str, *, tracking: TrackingConfig | None = None) -> LoadedStudent:
    """Load a registered student's safetensors weights: ``name@alias``, ``name/<version>`` or a bare name.

    Raises :class:`RegistryError` (no such version, not a student, not exactly one weights
    file), :class:`~fourds.models.weights.WeightsError` (unreadable weights),
    :class:`ModelInputError` (a malformed ``fourds.preprocessing`` tag), or MLflow's or the
    file system's error when the version's files cannot be downloaded.
    """
    registered = _load_registered_weights(ref, "student")
    version, info = registered.version, registered.info
    recorded = version.tags.get(PREPROCESSING_TAG)
    preprocessing = None
    if recorded:
        try:
            preprocessing = ImagePreprocessing.from_json(recorded)
        except ModelInputError as exc:
            raise ModelInputError(f"{registered.where} records a malformed preprocessing (tag {PREPROCESSING_TAG}): "
                                  f"{exc}") from None
    return LoadedStudent(
        model=registered.model,
        arch=info.arch,
        classes=info.classes,
        stem=info.stem,
        model_name=version.name,
        version=str(version.version),
        preprocessing=preprocessing,
    )


def load_onnx_classifier(
    ref: str,
    *,
    fallback_preprocessing: ImagePreprocessing | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[OnnxImageClassifier, str]:
    """The ONNX classifier of a registered student (``name@alias``, ``name/<version>``) or of an ``.onnx`` file.

    A bare registered name means its champion (``name@champion``). Returns the classifier
    with a description of what was loaded. The preprocessing and class names the ONNX file
    records are used; malformed ones raise :class:`ModelInputError` naming the model. An
    ONNX file exported before fourds recorded its preprocessing uses
    ``fallback_preprocessing`` (and the version's class tag for its classes) and says so
    through ``warn`` (default: :func:`warnings.warn`), naming what it assumed; without a
    fallback it is refused with a message saying so.
    """
    path = Path(ref)
    if path.suffix == ".onnx" or path.is_file():
        if not path.is_file():
            raise RegistryError(f"ONNX file not found: {path}")
        return _onnx_classifier(path, str(path), fallback_preprocessing, None, warn), str(path)
    text = ref.strip().removeprefix("models:/")
    version = resolve_model_version(text if "@" in text or "/" in text else f"{text}@{CHAMPION}")
    where = f"{version.name} version {version.version}"
    if version.tags.get(KIND_TAG) not in (None, "student"):
        raise RegistryError(
            f"{where} is a {version.tags[KIND_TAG]}, not a student: predict with a student's ONNX model "
            "(a teacher loads with mlflow.pyfunc.load_model, see docs/REGISTRY.md)"
        )
    tagged = version.tags.get(CLASSES_TAG)
    classes = parse_class_names(tagged, f"{where} (tag {CLASSES_TAG})") if tagged is not None else None
    with tempfile.TemporaryDirectory() as scratch:
        folder = _download_version(version, scratch)
        classifier = _onnx_classifier(_one_file(folder, "*.onnx", where), where, fallback_preprocessing, classes, warn)
    return classifier, f"models:/{version.name}/{version.version}"


def image_batch_signature() -> ModelSignature:
    """The pyfunc signature of every registered classifier: uint8 RGB images in, one labelled row per image out."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))]),
        outputs=Schema([ColSpec("string", "label"), ColSpec("long", "label_index"), ColSpec("double", "probability")]),
    )


def example_image_batch(preprocessing: ImagePreprocessing) -> np.ndarray:
    """One mid-grey image, the input example stored with a model.

    At most 32 pixels a side, whatever the network's input size: images of any size are
    resized and cropped by the model, and the example is stored as JSON.
    """
    side = min(preprocessing.image_size, 32)
    return np.full((1, side, side, 3), 128, dtype=np.uint8)


def resolve_model_version(ref: str, *, default_name: str | None = None):
    """The model version ``ref`` names: ``[models:/]name@alias``, ``[models:/]name/<version>``,
    a bare version number of ``default_name``, or a bare name (its latest version)."""
    text = ref.strip().removeprefix("models:/")
    if not text:
        raise RegistryError("empty model reference: expected name@alias, name/<version> or a version number")
    if "@" in text:
        name, alias = text.split("@", 1)
        name = name or default_name
        registered = get_registered_model(name)
        if alias not in registered.aliases:
            aliases = ", ".join(f"{a} -> {v}" for a, v in sorted(registered.aliases.items())) or "none"
            raise RegistryError(f"{name} has no alias {alias!r}; its aliases: {aliases}")
        return get_model_version(name, registered.aliases[alias])
    if "/" in text:
        name, version = text.rsplit("/", 1)
        return get_model_version(name, version)
    if text.isdigit():
        if default_name is None:
            raise RegistryError(f"a bare version number ({text}) needs a model name: use name/{text}")
        return get_model_version(default_name, text)
    get_registered_model(text)
    versions = MlflowClient().search_model_versions(f"name='{_quoted(text)}'")
    if not versions:
        raise RegistryError(f"{text} has no versions yet")
    return max(versions, key=lambda v: int(v.version))


@contextmanager
def _active_or_new_run(domain: str, run_name: str, tracking: TrackingConfig | None) -> Iterator[None]:
    """Use the caller's MLflow run when there is one; otherwise open one in the domain's experiment."""
    if mlflow.active_run() is not None:
        yield
        return
    experiment_for_domain(domain, tracking)
    with mlflow.start_run(run_name=run_name, tags={KIND_TAG: "teacher-import"}):
        yield


def _ensure_registered_model(name: str, *, tags: dict[str, str], description: str) -> None:
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            client.create_registered_model(name, tags=tags, description=description)
        except MlflowException as race:  # another process created it meanwhile
            if race.error_code != "RESOURCE_ALREADY_EXISTS":
                raise


@dataclass(frozen=True)
class _RegisteredWeights:
    version: object
    """The MLflow ``ModelVersion``."""
    where: str
    """``<name> version <n>``, for messages."""
    model: nn.Module
    info: ClassifierInfo
    weights_sha256: str


def _load_registered_weights(
    ref: str, kind: str, *, default_name: str | None = None, classes: list[str] | None = None
) -> _RegisteredWeights:
    """The one safetensors file of the registered ``kind`` (student, teacher) version ``ref`` names, loaded.

    Errors name the version, not the scratch copy of its file.
    """
    version = resolve_model_version(ref, default_name=default_name)
    where = f"{version.name} version {version.version}"
    if version.tags.get(KIND_TAG) not in (None, kind):
        raise RegistryError(f"{where} is a {version.tags[KIND_TAG]}, not a {kind} (asked for {ref!r})")
    with tempfile.TemporaryDirectory() as scratch:
        weights = _one_file(_download_version(version, scratch), "*.safetensors", where)
        try:
            model, info = load_classifier(weights, classes=classes)
        except WeightsError as exc:
            raise WeightsError(str(exc).replace(str(weights), where)) from exc
        return _RegisteredWeights(version, where, model, info, file_sha256(weights))


def _onnx_metadata(onnx_path: Path) -> dict[str, str]:
    return {prop.key: prop.value for prop in onnx.load(str(onnx_path), load_external_data=False).metadata_props}


def _recorded_preprocessing(onnx_path: Path, classes: list[str]) -> ImagePreprocessing:
    """The preprocessing an exported student records, after checking its class names match the weights."""
    props = _onnx_metadata(onnx_path)
    if PREPROCESSING_KEY not in props or CLASSES_KEY not in props:
        raise RegistryError(
            f"{onnx_path} does not record its preprocessing and class names (ONNX metadata {PREPROCESSING_KEY!r}, "
            f"{CLASSES_KEY!r}), so the registered model could not be used on its own: export it with "
            "export_onnx(..., metadata=classifier_metadata(preprocessing, classes))"
        )
    if json.loads(props[CLASSES_KEY]) != list(classes):
        raise RegistryError(
            f"{onnx_path} records the classes {props[CLASSES_KEY]}, but the student weights hold {json.dumps(classes)}"
        )
    return ImagePreprocessing.from_json(props[PREPROCESSING_KEY])


def _onnx_classifier(
    path: Path,
    where: str,
    fallback_preprocessing: ImagePreprocessing | None,
    classes: list[str] | None,
    warn: Callable[[str], None] | None,
) -> OnnxImageClassifier:
    """The classifier of an ONNX file (``where`` names it in errors): what the file records wins.

    Only a file that records no preprocessing at all (exported before fourds wrote it) gets
    ``fallback_preprocessing``, with a warning; one without class names gets ``classes``.
    Malformed metadata is an error, never a reason to fall back.
    """
    recorded = _onnx_metadata(path)
    preprocessing = None
    if PREPROCESSING_KEY not in recorded and fallback_preprocessing is not None:
        preprocessing = fallback_preprocessing
        (warn or _warn)(f"{where} does not record its preprocessing (exported before fourds recorded it); "
                        f"assuming: {preprocessing.describe()}")
    try:
        return OnnxImageClassifier(path, preprocessing=preprocessing,
                                   classes=None if CLASSES_KEY in recorded else classes)
    except ModelInputError as exc:
        raise ModelInputError(str(exc).replace(str(path), where)) from None


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=4)


def _student_loader_copy(folder: Path) -> Path:
    """The student's pyfunc loader, as the top-level module the registered model imports."""
    copy = folder / f"{STUDENT_LOADER_MODULE}.py"
    shutil.copyfile(onnx_classifier.__file__, copy)
    return copy


def _requirements(*distributions: str) -> list[str]:
    """Pinned pip requirements of the installed ``distributions`` (MLflow's inference would load the model)."""
    pinned = []
    for name in distributions:
        try:
            pinned.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pinned.append(name)
    return pinned


def _download_version(version, scratch: str) -> Path:
    return Path(mlflow.artifacts.download_artifacts(f"models:/{version.name}/{version.version}", dst_path=scratch))


def _one_file(folder: Path, pattern: str, where: str) -> Path:
    candidates = sorted(folder.rglob(pattern))
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise RegistryError(f"{where} should hold exactly one {pattern} file; found: {found}")
    return candidates[0]


def _declared_opset(proto: onnx.ModelProto) -> int:
    return next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))


def _existing_weights_file(path: str | Path, *, suffixes: tuple[str, ...], role: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise RegistryError(f"{role} weights file not found: {path}")
    if path.suffix not in suffixes:
        raise RegistryError(f"{role} weights {path} should be one of {', '.join(suffixes)} (never a pickled model)")
    return path


def _looks_like_file(ref: str) -> bool:
    return Path(ref).suffix in SAFETENSORS_SUFFIXES + TORCH_SUFFIXES or Path(ref).is_file()


def _alias_for_domain(domain: str | None) -> str | None:
    """A domain name usable as an alias (MLflow: letters, digits, _ and -), else None."""
    if not domain:
        return None
    alias = re.sub(r"[^A-Za-z0-9_\-]", "-", domain)
    if alias.lower() in ("latest", "champion", "challenger") or re.fullmatch(r"[vV]\d+", alias):
        return None
    return alias


def _quoted(name: str) -> str:
    return name.replace("'", "\\'")
