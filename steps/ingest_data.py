"""Bring a domain's images into the DVC-tracked data folder (``fourds.runs.data.ingest_for_run``)."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.runs.data import ingest_for_run
from fourds.runs.records import IngestedDomain, RunContext


@step(enable_cache=False)  # the source may change behind the same path: always re-read it
def ingest_data(
    config: RunConfig, run: RunContext, data_source: str, data_sha256: str | None = None
) -> Annotated[IngestedDomain, "ingested_domain"]:
    return ingest_for_run(config, run, data_source, data_sha256)
