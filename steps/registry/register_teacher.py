"""Register a freshly trained teacher with its class list and the DVC md5 of its training data."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.registry import register_teacher as register_in_mlflow
from steps.artifacts import (
    EvaluationSummary,
    IngestedDomain,
    RegisteredVersion,
    RunContext,
    TrainedModels,
    ValidationSummary,
)
from steps.tracking.mlflow_run import resumed_mlflow_run
from steps.tracking.zenml_model import log_model_metadata


@step(enable_cache=False)
def register_teacher(
    config: RunConfig,
    run: RunContext,
    ingested: IngestedDomain,
    validation: ValidationSummary,
    trained: TrainedModels,
    evaluation: EvaluationSummary,
) -> Annotated[RegisteredVersion, "registered_teacher"]:
    """The weights file carries arch, classes and stem in its header; the tags add where its data came from."""
    with resumed_mlflow_run(run, config):
        registered = register_in_mlflow(
            trained.weights["teacher"],
            source_domain=ingested.name,
            data_md5=ingested.domain_md5,
            metrics={name: value for name, value in evaluation.metrics.items() if name.endswith("/accuracy")},
            config=config,
            extra_tags={
                "fourds.data_git_revision": ingested.git_revision or "unknown",
                "fourds.gx_success": str(validation.success).lower(),
                "fourds.zenml_run_id": run.zenml_run_id,
            },
        )
    log_model_metadata({"mlflow_model": registered.model_name, "mlflow_version": registered.version})
    return RegisteredVersion(model_name=registered.model_name, version=registered.version, tags=registered.tags)
