"""A run's data: ingest the domain (DVC), validate it (Great Expectations), and build its datasets."""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow

from fourds.config import RunConfig
from fourds.data.datasets import DomainSplits, domain_splits
from fourds.data.ingest import ingest_domain
from fourds.data.table import read_image_table
from fourds.data.validation import validate_domain
from fourds.runs.context import tracked
from fourds.runs.records import IngestedDomain, RunContext, TeacherWeights, ValidationSummary
from fourds.tracking import log_domain_datasets
from fourds.workspace import Workspace


def ingest_for_run(config: RunConfig, run: RunContext, data_source: str, data_sha256: str | None) -> IngestedDomain:
    """Bring the domain into the DVC-tracked data folder and record exactly what this run used."""
    result = ingest_domain(
        data_source,
        run.domain,
        Workspace(Path(run.workspace_root)),
        sha256=data_sha256,
        val_fraction=config.data.val_fraction,
        test_fraction=config.data.test_fraction,
        progress=config.train.progress,
    )
    with tracked(run, config):  # the run page lists each split, digest = the DVC md5
        log_domain_datasets(result.table_path, domain=result.name, domain_md5=result.domain_md5,
                            source=str(result.domain_dir))
    return IngestedDomain(
        name=result.name,
        domain_dir=str(result.domain_dir),
        images_dir=str(result.images_dir),
        table_path=str(result.table_path),
        classes=list(result.classes),
        num_images=result.num_images,
        unlabelled_images=result.unlabelled_images,
        domain_md5=result.domain_md5,
        data_md5=result.data_md5,
        git_revision=result.git_revision,
        data_dvc_dirty=result.data_dvc_dirty,
        source=str(result.source),
    )


def validate_for_run(
    config: RunConfig, run: RunContext, ingested: IngestedDomain, teacher: TeacherWeights | None = None
) -> ValidationSummary:
    """Run the GX suite; labels are checked against the teacher's class list when there is a teacher.

    The report is logged to MLflow before a failure is raised, so a failed run keeps it.
    """
    # GX logs each of its internal registrations at INFO, which an orchestrator's root level shows.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    classes = teacher.classes if teacher is not None else ingested.classes
    report_dir = Path(run.run_dir) / "validation"
    with tracked(run, config):
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


def run_splits(
    ingested: IngestedDomain, config: RunConfig, classes: list[str], *, label_budget: bool = True
) -> DomainSplits:
    """The ingested domain's datasets (see :func:`fourds.data.datasets.domain_splits`)."""
    table = read_image_table(Path(ingested.table_path))
    return domain_splits(Path(ingested.images_dir), table, config.data, classes, label_budget=label_budget)
