"""First step of every pipeline: the run folder and the run's one MLflow run."""

from __future__ import annotations

from typing import Annotated

from zenml import get_step_context, step

from fourds.config import RunConfig
from fourds.runs.context import open_run
from fourds.runs.records import RunContext


@step(enable_cache=False)
def start_run(config: RunConfig, domain: str, workspace_root: str, kind: str) -> Annotated[RunContext, "run_context"]:
    pipeline_run = get_step_context().pipeline_run
    return open_run(config, domain=domain, workspace_root=workspace_root, kind=kind, run_name=pipeline_run.name,
                    orchestrator_run_id=str(pipeline_run.id))
