"""Register the student in the MLflow registry with every lineage fact as a tag (alias ``challenger``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.export.onnx import sha256_file
from fourds.lineage.record import LineageRecord, code_commit
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
        data_domain_md5=ingested.domain_md5,
        data_md5=ingested.data_md5,
        data_git_revision=ingested.git_revision,
        table_sha256=sha256_file(ingested.table_path),
        teacher_model_name=teacher.registered_name or teacher.reference,
        teacher_version=teacher.registered_version,
        teacher_data_md5=teacher.source_data_md5,
        code_commit=code_commit(),
        config_hash=config.config_hash(),
        zenml_run_id=run.zenml_run_id,
        gx_success=validation.success,
        gx_result_uri=validation.results_json,
        onnx_sha256=onnx_model.sha256,
        mlflow_run_id=run.mlflow_run_id,
        metrics=_key_metrics(evaluation, onnx_model),
    )
    model_name = f"{config.tracking.student_model_prefix}{run.domain}"
    with resumed_mlflow_run(run, config):
        version = register_in_mlflow(
            model_name,
            weights_path=Path(trained.weights["student"]),
            onnx_path=Path(onnx_model.path),
            lineage=lineage,
        )
    log_model_metadata({"mlflow_model": model_name, "mlflow_version": str(version)})
    return RegisteredVersion(model_name=model_name, version=str(version), tags=lineage.to_tags())


def _key_metrics(evaluation: EvaluationSummary, onnx_model: ExportedOnnx) -> dict[str, float]:
    """What promotion compares and what `fourds status` shows."""
    metrics = {name: value for name, value in evaluation.metrics.items() if name.endswith("/accuracy")}
    metrics["onnx_parity_max_abs_diff"] = onnx_model.parity_max_abs_diff
    metrics["onnx_size_mb"] = onnx_model.size_bytes / 2**20
    if "1" in onnx_model.latency_ms:
        metrics["onnx_latency_ms_batch1"] = onnx_model.latency_ms["1"]
    return metrics
