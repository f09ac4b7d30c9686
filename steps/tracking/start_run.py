"""First step of every pipeline: create the run folder and the run's one MLflow run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from zenml import get_step_context, step

from fourds.config import RunConfig
from fourds.workspace import Workspace
from steps.artifacts import RunContext
from steps.tracking.mlflow_run import start_mlflow_run


@step(enable_cache=False)
def start_run(config: RunConfig, domain: str, workspace_root: str, kind: str) -> Annotated[RunContext, "run_context"]:
    """Every later step writes into this run's folder and MLflow run, found through the returned record."""
    context = get_step_context()
    workspace = Workspace(Path(workspace_root)).ensure()
    run_name = context.pipeline_run.name
    run_dir = workspace.run_dir(run_name)
    run_dir.mkdir(parents=True, exist_ok=True)
    zenml_run_id = str(context.pipeline_run.id)
    mlflow_experiment_id, mlflow_run_id = start_mlflow_run(
        workspace,
        config,
        domain=domain,
        run_name=run_name,
        tags={"fourds.kind": kind, "fourds.domain": domain, "fourds.zenml_run_id": zenml_run_id},
    )
    return RunContext(
        workspace_root=str(workspace.root),
        run_name=run_name,
        run_dir=str(run_dir),
        zenml_run_id=zenml_run_id,
        mlflow_experiment_id=mlflow_experiment_id,
        mlflow_run_id=mlflow_run_id,
        domain=domain,
    )
