"""Bring a domain's images into the DVC-tracked data folder and record exactly what was used."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.data.ingest import ingest_domain
from fourds.registry.tracking import log_domain_datasets
from fourds.workspace import Workspace
from steps.artifacts import IngestedDomain, RunContext
from steps.tracking.mlflow_run import resumed_mlflow_run


@step(enable_cache=False)  # the source may change behind the same path: always re-read it
def ingest_data(
    config: RunConfig, run: RunContext, data_source: str, data_sha256: str | None = None
) -> Annotated[IngestedDomain, "ingested_domain"]:
    result = ingest_domain(
        data_source,
        run.domain,
        Workspace(Path(run.workspace_root)),
        sha256=data_sha256,
        val_fraction=config.data.val_fraction,
        test_fraction=config.data.test_fraction,
        progress=config.train.progress,
    )
    with resumed_mlflow_run(run, config):  # the run page lists each split, digest = the DVC md5
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
