"""A run's data: ingest the domain and push it to the DVC remote, pull it back by md5, validate it, build datasets."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import mlflow

from fourds.config import RunConfig
from fourds.data.datasets import DomainSplits, domain_splits
from fourds.data.ingest import IMAGES_FOLDER, TABLE_FILE, ingest_domain
from fourds.data.table import read_image_table
from fourds.data.validation import validate_domain
from fourds.data.versioning import DataVersionError, checkout_domain, default_remote, push_data_folder
from fourds.hashing import file_sha256
from fourds.operations.locks import data_folder_lock
from fourds.runs.context import STEP_WORKSPACE_ENV, run_folder, step_workspace, tracked
from fourds.runs.records import IngestedDomain, RunContext, TeacherWeights, ValidationSummary
from fourds.tracking import log_domain_datasets

VALIDATION_ARTIFACTS = "validation"
"""Where a run's Great Expectations result and data docs live among its MLflow artifacts."""


def ingest_for_run(config: RunConfig, run: RunContext, data_source: str, data_sha256: str | None) -> IngestedDomain:
    """Bring the domain into the DVC-tracked data folder, push that data version to the DVC remote, and
    record exactly what this run uses (a failure marks the MLflow run FAILED)."""
    workspace = step_workspace(run)
    if config.data.dvc_remote is None and os.environ.get(STEP_WORKSPACE_ENV):
        raise DataVersionError(
            f"data.dvc_remote is not set, and this step works in its own workspace (${STEP_WORKSPACE_ENV}): the "
            "default remote, a folder in it, would not reach the next steps; set data.dvc_remote (e.g. s3://...)"
        )
    remote = config.data.dvc_remote or default_remote(workspace)
    with tracked(run, config), data_folder_lock(workspace):
        result = ingest_domain(
            data_source,
            run.domain,
            workspace,
            sha256=data_sha256,
            val_fraction=config.data.val_fraction,
            test_fraction=config.data.test_fraction,
            progress=config.train.progress,
        )
        push_data_folder(workspace, remote)
        # The run page lists each split, digest = the DVC md5.
        log_domain_datasets(result.table_path, domain=result.name, domain_md5=result.domain_md5,
                            source=str(result.domain_dir))
    return IngestedDomain(
        name=result.name,
        domain_dir=str(result.domain_dir),
        images_dir=str(result.images_dir),
        table_path=str(result.table_path),
        table_csv=Path(result.table_path).read_text(),
        table_sha256=file_sha256(result.table_path),
        dvc_remote=remote,
        classes=list(result.classes),
        num_images=result.num_images,
        unlabelled_images=result.unlabelled_images,
        domain_md5=result.domain_md5,
        data_md5=result.data_md5,
        git_revision=result.git_revision,
        data_dvc_dirty=result.data_dvc_dirty,
        source=str(result.source),
    )


def domain_folder(run: RunContext, ingested: IngestedDomain) -> Path:
    """The domain folder exactly as this run ingested it, on this machine (pulled from the DVC remote by md5)."""
    return checkout_domain(step_workspace(run), data_md5=ingested.data_md5, remote=ingested.dvc_remote,
                           domain=ingested.name)


def validate_for_run(
    config: RunConfig, run: RunContext, ingested: IngestedDomain, teacher: TeacherWeights | None = None
) -> ValidationSummary:
    """Run the GX suite; labels are checked against the teacher's class list when there is a teacher.

    The report is logged to MLflow (``validation/``) before a failure is raised, so a failed run keeps it.
    """
    # GX logs each of its internal registrations at INFO, which an orchestrator's root level shows.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    classes = teacher.classes if teacher is not None else ingested.classes
    report_dir = run_folder(run) / "validation"
    with tracked(run, config):
        report = validate_domain(domain_folder(run, ingested), classes, config.validation, report_dir)
        mlflow.set_tag("fourds.gx_success", str(report.success).lower())
        mlflow.log_metrics({f"validation/{name}": float(value) for name, value in report.statistics.items()
                            if isinstance(value, int | float)})
        mlflow.log_artifacts(str(report_dir), artifact_path=VALIDATION_ARTIFACTS)
        report.raise_for_failure()
    return ValidationSummary(
        success=report.success,
        results_json=f"runs:/{run.mlflow_run_id}/{VALIDATION_ARTIFACTS}/{Path(report.results_json).name}",
        html_report=str(report.html_report),
        statistics=dict(report.statistics),
    )


def run_splits(
    run: RunContext, ingested: IngestedDomain, config: RunConfig, classes: list[str], *, label_budget: bool = True
) -> DomainSplits:
    """The ingested domain's datasets (see :func:`fourds.data.datasets.domain_splits`): the images pulled by
    md5, the splits and labels from the table the record carries."""
    table_file = run_folder(run) / f"{ingested.name}-{TABLE_FILE}"
    table_file.write_text(ingested.table_csv)
    table = read_image_table(table_file)
    images = domain_folder(run, ingested) / IMAGES_FOLDER
    return domain_splits(images, table, config.data, classes, label_budget=label_budget)
