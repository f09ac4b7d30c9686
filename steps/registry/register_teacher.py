"""Register a freshly trained teacher with its class list and the DVC md5 of its training data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.registry import register_teacher as register_in_mlflow
from steps.artifacts import EvaluationSummary, IngestedDomain, RegisteredVersion, RunContext, TrainedModels, ValidationSummary
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
    with resumed_mlflow_run(run, config):
        version = register_in_mlflow(
            Path(trained.weights["teacher"]),
            arch=trained.arch["teacher"],
            classes=trained.classes,
            stem=trained.stem,
            data_md5=ingested.domain_md5,
            config=config,
            metrics=evaluation.metrics,
        )
    name = config.tracking.teacher_model_name
    log_model_metadata({"mlflow_model": name, "mlflow_version": str(version)})
    return RegisteredVersion(model_name=name, version=str(version))
