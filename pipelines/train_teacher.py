"""The teacher pipeline: ingest a source domain -> validate -> train -> evaluate -> register."""

from __future__ import annotations

from zenml import Model, pipeline
from zenml.enums import ExecutionMode

from fourds.config import RunConfig
from fourds.workspace import Workspace
import pipelines.materializers  # noqa: F401  (registers how records with files are stored)
from pipelines.launch import PipelineOutcome, launch, new_run_name
from steps.evaluate_models import evaluate_models
from steps.ingest_data import ingest_data
from steps.register_teacher import register_teacher
from steps.start_run import start_run
from steps.train_teacher_model import train_teacher_model
from steps.validate_data import validate_data

PIPELINE_NAME = "fourds_train_teacher"


@pipeline(name=PIPELINE_NAME, enable_cache=False, execution_mode=ExecutionMode.FAIL_FAST)
def train_teacher_pipeline(
    config: RunConfig,
    domain: str,
    data_source: str,
    workspace_root: str,
    data_sha256: str | None = None,
) -> None:
    run = start_run(config, domain, workspace_root, kind="teacher")
    ingested = ingest_data(config, run, data_source, data_sha256)
    validation = validate_data(config, run, ingested)
    trained = train_teacher_model(config, run, ingested, validation)
    evaluation = evaluate_models(config, run, ingested, trained)
    register_teacher(config, run, ingested, validation, trained, evaluation)


def run_train_teacher(
    config: RunConfig,
    *,
    domain: str,
    data_source: str,
    workspace: Workspace,
    data_sha256: str | None = None,
    zenml_options: dict | None = None,
) -> PipelineOutcome:
    """Run the pipeline; the run's artifacts are linked to the ZenML model ``fourds-teacher``."""
    return launch(
        train_teacher_pipeline,
        run_name=new_run_name("teacher", domain),
        params={
            "config": config,
            "domain": domain,
            "data_source": data_source,
            "workspace_root": str(workspace.root),
            "data_sha256": data_sha256,
        },
        zenml_options=zenml_options,
        model=Model(name=config.tracking.teacher_model_name, description="teachers trained on source domains"),
        model_metadata=teacher_model_metadata,
    )


def teacher_model_metadata(outputs: dict) -> dict:
    """What the ZenML model version shows of a finished run: test metrics and the MLflow version."""
    return {
        "test_metrics": outputs["evaluation"].metrics,
        "mlflow_model": outputs["registered_teacher"].model_name,
        "mlflow_version": outputs["registered_teacher"].version,
    }
