"""Register the student in the MLflow registry with every lineage fact as a tag (alias ``challenger``)."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.export.onnx import sha256_file
from fourds.lineage.record import LineageRecord, code_commit
from fourds.registry import gate_metrics
from fourds.registry import register_student as register_in_mlflow
from steps.artifacts import (
    EvaluationSummary,
    ExportedOnnx,
    IngestedDomain,
    RegisteredVersion,
    RunContext,
    TeacherWeights,
    TrainedModels,
    ValidationSummary,
)
from steps.evaluation.evaluate import SOURCE_TEACHER
from steps.tracking.mlflow_run import resumed_mlflow_run
from steps.tracking.zenml_model import log_model_metadata


@step(enable_cache=False)
def register_student(
    config: RunConfig,
    run: RunContext,
    ingested: IngestedDomain,
    teacher: TeacherWeights,
    validation: ValidationSummary,
    trained: TrainedModels,
    evaluation: EvaluationSummary,
    onnx_model: ExportedOnnx,
) -> Annotated[RegisteredVersion, "registered_version"]:
    """Only reached when every earlier step succeeded: a failed run registers nothing."""
    lineage = LineageRecord(
        domain=run.domain,
        method=config.method,
        student_method=trained.student_method or config.method,
        guard=trained.guard,
        data_domain_md5=ingested.domain_md5,
        data_md5=ingested.data_md5,
        data_git_revision=ingested.git_revision,
        table_sha256=sha256_file(ingested.table_path),
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
    # What the promotion gates read, plus every evaluated model's test accuracy for the audit.
    metrics = gate_metrics(
        test_accuracy=evaluation.metrics["test/student/accuracy"],
        source_teacher_accuracy=evaluation.metrics.get(f"test/{SOURCE_TEACHER}/accuracy"),
        parity_max_abs_diff=onnx_model.parity_max_abs_diff,
        latency_ms_batch1=onnx_model.latency_ms["1"],
        size_mb=onnx_model.size_bytes / 2**20,
    )
    metrics |= {name: value for name, value in evaluation.metrics.items() if name.endswith("/accuracy")}
    with resumed_mlflow_run(run, config):
        registered = register_in_mlflow(
            run.domain,
            onnx_path=onnx_model.path,
            weights_path=trained.weights["student"],
            lineage=lineage,
            metrics=metrics,  # the evaluation step logged its plots to the run already
            tracking=config.tracking,
        )
    log_model_metadata({"mlflow_model": registered.model_name, "mlflow_version": registered.version})
    return RegisteredVersion(model_name=registered.model_name, version=registered.version, tags=registered.tags)
