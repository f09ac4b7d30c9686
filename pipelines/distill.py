"""The distillation pipeline: ingest -> validate -> frozen teacher -> 4Ds -> evaluate -> ONNX -> register -> promote."""

from __future__ import annotations

from zenml import Model, pipeline
from zenml.enums import ExecutionMode

from fourds.config import RunConfig
from fourds.workspace import Workspace
import pipelines.materializers  # noqa: F401  (registers how records with files are stored)
from pipelines.launch import PipelineOutcome, launch, new_run_name
from steps.distill_student import distill_student
from steps.evaluate_models import evaluate_models
from steps.export_onnx import export_onnx
from steps.ingest_data import ingest_data
from steps.load_teacher import load_teacher
from steps.promote_student import promote_student
from steps.register_student import register_student
from steps.start_run import start_run
from steps.validate_data import validate_data

PIPELINE_NAME = "fourds_distill"


@pipeline(name=PIPELINE_NAME, enable_cache=False, execution_mode=ExecutionMode.FAIL_FAST)
def distill_pipeline(
    config: RunConfig,
    domain: str,
    data_source: str,
    workspace_root: str,
    teacher_ref: str | None = None,
    data_sha256: str | None = None,
) -> None:
    # Registration and promotion come last: a run that fails anywhere registers nothing.
    run = start_run(config, domain, workspace_root, kind="distill")
    ingested = ingest_data(config, run, data_source, data_sha256)
    teacher = load_teacher(config, run, teacher_ref)
    validation = validate_data(config, run, ingested, teacher)
    trained = distill_student(config, run, ingested, teacher, validation)
    evaluation = evaluate_models(config, run, ingested, trained, teacher)
    onnx_model = export_onnx(config, run, trained)
    registered = register_student(config, run, ingested, teacher, validation, trained, evaluation, onnx_model)
    promote_student(config, run, registered, evaluation)


def distill_run_params(config: RunConfig, *, domain: str, data_source: str, workspace: Workspace,
                       teacher: str | None = None, data_sha256: str | None = None) -> dict:
    """The pipeline's parameters, for a run now or a schedule."""
    return {"config": config, "domain": domain, "data_source": data_source, "workspace_root": str(workspace.root),
            "teacher_ref": teacher, "data_sha256": data_sha256}


def student_model(config: RunConfig, domain: str) -> Model:
    """The ZenML model (Model Control Plane) a domain's runs are linked to: ``fourds-student-<domain>``."""
    return Model(name=f"{config.tracking.student_model_prefix}{domain}",
                 description=f"{config.method} students for the domain '{domain}'")


def student_model_metadata(outputs: dict) -> dict:
    """What the ZenML model version shows of a finished run: test metrics, the MLflow version, the decision."""
    return {
        "test_metrics": outputs["evaluation"].metrics,
        "mlflow_model": outputs["registered_version"].model_name,
        "mlflow_version": outputs["registered_version"].version,
        "promoted": outputs["promotion"].promoted,
        "promotion_reasons": "\n".join(outputs["promotion"].reasons),
    }


def run_distill(config: RunConfig, *, domain: str, zenml_options: dict | None = None, **params) -> PipelineOutcome:
    """Run the pipeline now (``params``: see :func:`distill_run_params`)."""
    return launch(
        distill_pipeline,
        run_name=new_run_name("distill", domain),
        params=distill_run_params(config, domain=domain, **params),
        zenml_options=zenml_options,
        model=student_model(config, domain),
        model_metadata=student_model_metadata,
    )
