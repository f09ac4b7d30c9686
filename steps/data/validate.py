"""Run the Great Expectations suite on the per-image table; a failed suite stops the pipeline."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import mlflow
from zenml import step

from fourds.config import RunConfig
from fourds.data.validation import validate_domain
from steps.artifacts import IngestedDomain, RunContext, TeacherWeights, ValidationSummary
from steps.tracking.mlflow_run import resumed_mlflow_run


@step(enable_cache=False)
def validate_data(
    config: RunConfig, run: RunContext, ingested: IngestedDomain, teacher: TeacherWeights | None = None
) -> Annotated[ValidationSummary, "validation"]:
    """Labels are checked against the teacher's class list when there is a teacher, else the domain's own.

    The report is logged to MLflow before a failure is raised, so a failed run keeps it.
    """
    # GX logs each of its internal registrations at INFO, which ZenML's root level shows.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    classes = teacher.classes if teacher is not None else ingested.classes
    report_dir = Path(run.run_dir) / "validation"
    with resumed_mlflow_run(run, config):
        report = validate_domain(Path(ingested.domain_dir), classes, config.validation, report_dir)
        mlflow.set_tag("fourds.gx_success", str(report.success).lower())
        mlflow.log_metrics({f"validation/{name}": float(value) for name, value in report.statistics.items()
                            if isinstance(value, int | float)})
        mlflow.log_artifacts(str(report_dir), artifact_path="validation")
        report.raise_for_failure()
    return ValidationSummary(
        success=report.success,
        results_json=str(report.results_json),
        html_report=str(report.html_report),
        statistics=dict(report.statistics),
    )
