"""The distillation pipeline: ingest -> validate -> frozen teacher -> 4Ds -> evaluate -> ONNX -> register -> promote."""

from __future__ import annotations

from zenml import Model, pipeline
from zenml.enums import ExecutionMode

from fourds.config import RunConfig
from fourds.workspace import Workspace
from pipelines.launch import PipelineOutcome, launch, new_run_name
from steps.data.ingest import ingest_data
from steps.data.validate import validate_data
from steps.evaluation.evaluate import evaluate_models
from steps.export.export_onnx import export_onnx
from steps.model.load_teacher import load_teacher
from steps.registry.promote import promote_student
from steps.registry.register import register_student
from steps.tracking.start_run import start_run
from steps.training.distill import distill_student

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


def run_distill(
    config: RunConfig,
    *,
    domain: str,
    data_source: str,
    workspace: Workspace,
    teacher: str | None = None,
    data_sha256: str | None = None,
    zenml_options: dict | None = None,
) -> PipelineOutcome:
    """Run the pipeline; the run's artifacts are linked to the ZenML model ``fourds-student-<domain>``."""
    model_name = f"{config.tracking.student_model_prefix}{domain}"
    return launch(
        distill_pipeline,
        run_name=new_run_name("distill", domain),
        params={
            "config": config,
            "domain": domain,
            "data_source": data_source,
            "workspace_root": str(workspace.root),
            "teacher_ref": teacher,
            "data_sha256": data_sha256,
        },
        zenml_options=zenml_options,
        model=Model(name=model_name, description=f"{config.method} students for the domain '{domain}'"),
    )
