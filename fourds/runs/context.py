"""Opening a run (its folder and its one MLflow run), and reopening that MLflow run for a piece of work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow

from fourds.config import RunConfig
from fourds.runs.records import RunContext
from fourds.tracking import resumed_mlflow_run, start_mlflow_run
from fourds.workspace import Workspace


def open_run(
    config: RunConfig, *, domain: str, workspace_root: str, kind: str, run_name: str, orchestrator_run_id: str
) -> RunContext:
    """Create the run folder and the MLflow run; every later piece finds both through the returned record.

    ``run_name`` and ``orchestrator_run_id`` are the orchestrator's (ZenML's) name and id of this run.
    """
    workspace = Workspace(Path(workspace_root)).ensure()
    run_dir = workspace.run_dir(run_name)
    run_dir.mkdir(parents=True, exist_ok=True)
    experiment_id, mlflow_run_id = start_mlflow_run(
        workspace,
        config,
        domain=domain,
        run_name=run_name,
        tags={"fourds.kind": kind, "fourds.domain": domain, "fourds.zenml_run_id": orchestrator_run_id},
    )
    return RunContext(
        workspace_root=str(workspace.root),
        run_name=run_name,
        run_dir=str(run_dir),
        zenml_run_id=orchestrator_run_id,
        mlflow_experiment_id=experiment_id,
        mlflow_run_id=mlflow_run_id,
        domain=domain,
    )


@contextmanager
def tracked(run: RunContext, config: RunConfig) -> Iterator[mlflow.ActiveRun]:
    """The run's MLflow run, active inside the ``with`` block (marked FAILED if the block raises)."""
    with resumed_mlflow_run(run.workspace_root, config.tracking, experiment_id=run.mlflow_experiment_id,
                            run_id=run.mlflow_run_id) as active:
        yield active
