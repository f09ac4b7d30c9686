"""A run's student: distil it, export it to ONNX, register it with its lineage, promote it if it wins."""

from __future__ import annotations

import logging

import mlflow

from fourds.config import RunConfig
from fourds.export.onnx import classifier_metadata, export_and_check
from fourds.inference import preprocessing_for
from fourds.lineage.record import LineageRecord, code_commit
from fourds.method.adapted_teacher import save_adapted_teacher
from fourds.models import load_classifier, save_classifier
from fourds.registry import gate_metrics, promote_if_better, register_student
from fourds.runs.context import run_folder, tracked, training_callbacks
from fourds.runs.data import run_splits
from fourds.runs.records import (
    EvaluationSummary,
    ExportedOnnx,
    IngestedDomain,
    PromotionOutcome,
    RegisteredVersion,
    RunContext,
    TeacherWeights,
    TrainedWeights,
    ValidationSummary,
)
from fourds.training.recipes import ADAPTED_TEACHER, STUDENT, distill

logger = logging.getLogger(__name__)

SOURCE_TEACHER = "source_teacher"
"""The evaluation role of the frozen teacher as it came (trained on the source domain only)."""


def distill_for_run(config: RunConfig, run: RunContext, ingested: IngestedDomain, teacher: TeacherWeights) -> TrainedWeights:
    """Distil the frozen teacher into the student with ``config.method`` and save every trained network of
    the run (the student, and the adapted, fine-tuned or runner-up networks the method produced) by role."""
    run_dir = run_folder(run)
    teacher_model, _ = load_classifier(teacher.local_weights(run_dir), arch=teacher.arch, classes=teacher.classes,
                                       stem=teacher.stem)
    splits = run_splits(run, ingested, config, teacher.classes)
    with tracked(run, config):
        callbacks, checkpoints = training_callbacks(config, run)
        result = distill(config, teacher_model, splits.train, splits.val, num_classes=len(teacher.classes),
                         callbacks=callbacks, checkpoint_dir=checkpoints, unlabelled_set=splits.unlabelled)
        mlflow.log_params({"data.unlabelled_images": ingested.unlabelled_images,
                           "data.unlabelled_images_used": result.unlabelled_images})
        guard = result.guard.summary() if result.guard is not None else "off"
        if result.guard is not None:
            mlflow.log_metrics(result.guard.metrics())
        mlflow.set_tags({"fourds.guard": guard, "fourds.student_method": result.student_method})
    logger.info("scratch guard: %s", guard)
    weights, archs, files = {}, {}, {}
    for role, network in result.networks().items():
        path = run_dir / f"{role}.safetensors"
        header = {"method": network.method, "domain": ingested.name}
        if role == ADAPTED_TEACHER:
            save_adapted_teacher(network.model.model, path, arch=network.arch, classes=teacher.classes,
                                 stem=config.model.stem, metadata=header)
        else:
            save_classifier(network.model, path, arch=network.arch, classes=teacher.classes, stem=config.model.stem,
                            metadata=header)
        weights[role], archs[role], files[path.name] = str(path), network.arch, path.read_bytes()
    return TrainedWeights(
        files=files,
        weights=weights,
        arch=archs,
        classes=teacher.classes,
        stem=config.model.stem,
        method=config.method,
        student_method=result.student_method,
        guard=guard,
        wall_seconds=result.wall_seconds,
        images_per_second=result.images_per_second,
        unlabelled_images_used=result.unlabelled_images,
        final_metrics=dict(result.metrics),
    )


def export_for_run(config: RunConfig, run: RunContext, trained: TrainedWeights) -> ExportedOnnx:
    """Export the student to ONNX with its preprocessing and classes inside, check it against PyTorch, time it.

    A parity failure stops the run here (after its figures are logged), so a student that
    ONNX does not reproduce is never registered.
    """
    # torch's exporter and onnxscript log every graph rewrite at INFO, which an orchestrator's root level shows.
    for noisy in ("torch.onnx", "onnxscript", "onnx_ir"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    run_dir = run_folder(run)
    student, info = load_classifier(trained.local_weights(run_dir)[STUDENT])
    metadata = classifier_metadata(preprocessing_for(config.data), info.classes, arch=info.arch, domain=run.domain)
    checked = export_and_check(student, run_dir / "student.onnx", image_size=config.data.image_size,
                               config=config.export, arch=info.arch, metadata=metadata)
    with tracked(run, config):
        mlflow.log_metrics({
            "onnx/parity_max_abs_diff": checked.parity_max_abs_diff,
            "onnx/size_mb": checked.export.size_mb,
            **{f"onnx/latency_ms_batch{batch}": ms for batch, ms in checked.latency_ms.items()},
        })
        checked.raise_for_parity(config.promotion.max_parity_abs_diff)
    return ExportedOnnx(
        files={checked.export.path.name: checked.export.path.read_bytes()},
        path=str(checked.export.path),
        sha256=checked.export.sha256,
        size_bytes=checked.export.size_bytes,
        opset=checked.export.opset,
        parity_max_abs_diff=checked.parity_max_abs_diff,
        latency_ms=checked.latency_ms,
    )


def student_lineage(
    config: RunConfig,
    run: RunContext,
    ingested: IngestedDomain,
    teacher: TeacherWeights,
    validation: ValidationSummary,
    trained: TrainedWeights,
    onnx_model: ExportedOnnx,
) -> LineageRecord:
    """Every lineage fact of the run's student, as its registry version records them."""
    return LineageRecord(
        domain=run.domain,
        method=config.method,
        student_method=trained.student_method or config.method,
        guard=trained.guard,
        data_domain_md5=ingested.domain_md5,
        data_md5=ingested.data_md5,
        data_git_revision=ingested.git_revision,
        table_sha256=ingested.table_sha256,
        data_dvc_remote=ingested.dvc_remote,
        data_unlabelled_images=ingested.unlabelled_images,
        data_unlabelled_images_used=trained.unlabelled_images_used,
        teacher_model_name=teacher.registered_name,
        teacher_version=teacher.registered_version,
        teacher_data_md5=teacher.source_data_md5,
        code_commit=code_commit(),
        config_hash=config.config_hash(),
        zenml_run_id=run.zenml_run_id,
        gx_success=validation.success,
        gx_result_uri=validation.results_json,
        onnx_sha256=onnx_model.sha256,
        mlflow_run_id=run.mlflow_run_id,
    )


def register_student_for_run(
    config: RunConfig,
    run: RunContext,
    ingested: IngestedDomain,
    teacher: TeacherWeights,
    validation: ValidationSummary,
    trained: TrainedWeights,
    evaluation: EvaluationSummary,
    onnx_model: ExportedOnnx,
) -> RegisteredVersion:
    """Register the student (alias ``challenger``) with every lineage fact as a tag. Only reached when every
    earlier piece succeeded: a failed run registers nothing."""
    # What the promotion gates read, plus every evaluated model's test accuracy for the audit.
    metrics = gate_metrics(
        test_accuracy=evaluation.metrics[f"test/{STUDENT}/accuracy"],
        source_teacher_accuracy=evaluation.metrics.get(f"test/{SOURCE_TEACHER}/accuracy"),
        parity_max_abs_diff=onnx_model.parity_max_abs_diff,
        latency_ms_batch1=onnx_model.latency_ms["1"],
        size_mb=onnx_model.size_bytes / 2**20,
    )
    metrics |= {name: value for name, value in evaluation.metrics.items() if name.endswith("/accuracy")}
    lineage = student_lineage(config, run, ingested, teacher, validation, trained, onnx_model)
    run_dir = run_folder(run)
    with tracked(run, config):
        registered = register_student(
            run.domain,
            onnx_path=onnx_model.local_file(run_dir),
            weights_path=trained.local_weights(run_dir)[STUDENT],
            lineage=lineage,
            metrics=metrics,  # the evaluation logged its plots to the run already
            tracking=config.tracking,
        )
    return RegisteredVersion(model_name=registered.model_name, version=registered.version, tags=registered.tags)


def promote_for_run(
    config: RunConfig, run: RunContext, registered: RegisteredVersion, evaluation: EvaluationSummary
) -> PromotionOutcome:
    """Apply the promotion policy: ``champion`` moves only when the new version passes every gate.

    ``evaluation`` carries the champion re-scored on this run's test split: the figure the champion gate compares.
    """
    with tracked(run, config):
        decision = promote_if_better(registered.model_name, registered.version, config.promotion,
                                     champion_score=evaluation.champion, echo=False)
    return PromotionOutcome(
        model_name=registered.model_name,
        version=registered.version,
        promoted=decision.promoted,
        reasons=decision.reasons,
        champion_version=registered.version if decision.promoted else decision.champion_version_before,
    )
