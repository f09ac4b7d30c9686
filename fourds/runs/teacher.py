"""A run's teacher: resolve the frozen one (registry or file), or train and register one on a source domain."""

from __future__ import annotations


from fourds.config import RunConfig
from fourds.lineage.record import LineageRecord
from fourds.models import save_classifier
from fourds.registry import load_teacher, register_teacher
from fourds.runs.context import run_folder, tracked, training_callbacks
from fourds.runs.data import run_splits
from fourds.runs.records import (
    EvaluationSummary,
    IngestedDomain,
    RegisteredVersion,
    RunContext,
    TeacherWeights,
    TrainedWeights,
    ValidationSummary,
)
from fourds.training.recipes import train_teacher

TEACHER = "teacher"
"""The role of a trained teacher's weights in :class:`TrainedWeights`."""
TEACHER_FILE = "teacher.safetensors"


def resolve_teacher_for_run(config: RunConfig, run: RunContext, teacher_ref: str | None) -> TeacherWeights:
    """Copy the frozen teacher into the run folder. No class check here: validation checks every label
    against the teacher's classes and names the files."""
    reference = teacher_ref or config.tracking.teacher_model_name  # a bare name: its latest version
    with tracked(run, config):
        loaded = load_teacher(reference, tracking=config.tracking)
    weights_path = save_classifier(loaded.model, run_folder(run) / TEACHER_FILE, arch=loaded.arch,
                                   classes=loaded.classes, stem=loaded.stem, metadata={"reference": reference})
    return TeacherWeights(
        files={TEACHER_FILE: weights_path.read_bytes()},
        weights_path=str(weights_path),
        arch=loaded.arch,
        stem=loaded.stem,
        classes=list(loaded.classes),
        reference=reference,
        # An unregistered weights file is identified by its path and content hash.
        registered_name=loaded.model_name or reference,
        registered_version=loaded.version or f"sha256:{loaded.weights_sha256}",
        source_data_md5=loaded.data_md5,
    )


def train_teacher_for_run(config: RunConfig, run: RunContext, ingested: IngestedDomain) -> TrainedWeights:
    """Train a teacher on every labelled training image of the source domain (labels only: a teacher
    has no label-free terms, so the domain's unlabelled images are not used)."""
    splits = run_splits(run, ingested, config, ingested.classes, label_budget=False)
    run_dir = run_folder(run)
    with tracked(run, config):
        callbacks, checkpoints = training_callbacks(config, run, prefix="teacher/")
        trained = train_teacher(config, splits.train, splits.val, num_classes=len(ingested.classes),
                                callbacks=callbacks, checkpoint_dir=checkpoints / "teacher")
    weights_path = save_classifier(trained.model, run_dir / TEACHER_FILE, arch=config.model.teacher_arch,
                                   classes=ingested.classes, stem=config.model.stem,
                                   metadata={"domain": ingested.name, "data_md5": ingested.domain_md5})
    return TrainedWeights(
        files={TEACHER_FILE: weights_path.read_bytes()},
        weights={TEACHER: str(weights_path)},
        arch={TEACHER: config.model.teacher_arch},
        classes=ingested.classes,
        stem=config.model.stem,
        method=TEACHER,
        wall_seconds=trained.result.wall_seconds,
        images_per_second=trained.result.images_per_second,
        final_metrics=dict(trained.result.metrics),
    )


def register_teacher_for_run(
    config: RunConfig,
    run: RunContext,
    ingested: IngestedDomain,
    validation: ValidationSummary,
    trained: TrainedWeights,
    evaluation: EvaluationSummary,
) -> RegisteredVersion:
    """The weights file carries arch, classes and stem in its header; the lineage adds where its data came from."""
    lineage = LineageRecord(data_git_revision=ingested.git_revision or "unknown", gx_success=validation.success,
                            zenml_run_id=run.zenml_run_id)
    weights = trained.local_weights(run_folder(run))[TEACHER]
    with tracked(run, config):
        registered = register_teacher(
            weights,
            source_domain=ingested.name,
            data_md5=ingested.domain_md5,
            metrics={name: value for name, value in evaluation.metrics.items() if name.endswith("/accuracy")},
            config=config,
            lineage=lineage,
        )
    return RegisteredVersion(model_name=registered.model_name, version=registered.version, tags=registered.tags)
