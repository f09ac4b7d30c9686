"""Opening a run (its one MLflow run), each piece's own workspace and run folder, and reopening the MLflow run.

Every piece works in the workspace of the machine it runs on: ``$FOURDS_STEP_WORKSPACE``
when set (a step in its own pod or process, with nothing shared), else the workspace of
the command that started the run (one machine: the same folder for every piece). What
pieces share goes through the records (the orchestrator's artifact store), the DVC
remote and the MLflow tracking server, never through that folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow

from fourds.config import RunConfig
from fourds.runs.records import RunContext
from fourds.tracking import resumed_mlflow_run, start_mlflow_run
from fourds.tracking.store import is_sqlite
from fourds.workspace import Workspace

STEP_WORKSPACE_ENV = "FOURDS_STEP_WORKSPACE"


def open_run(
    config: RunConfig, *, domain: str, workspace_root: str, kind: str, run_name: str, orchestrator_run_id: str
) -> RunContext:
    """Create the run's MLflow run; every later piece finds it (and its run folder) through the returned record.

    ``run_name`` and ``orchestrator_run_id`` are the orchestrator's (ZenML's) name and id of this run.
    """
    if os.environ.get(STEP_WORKSPACE_ENV) and is_sqlite(Workspace(Path(workspace_root)).tracking_uri(
            config.tracking.tracking_uri)):
        raise RuntimeError(
            f"steps work in their own workspaces (${STEP_WORKSPACE_ENV}) but MLflow tracks into a SQLite file, "
            "which the next steps cannot reach: set MLFLOW_TRACKING_URI (or tracking.tracking_uri) to a server"
        )
    run = RunContext(workspace_root=str(Path(workspace_root).resolve()), run_name=run_name,
                     zenml_run_id=orchestrator_run_id, mlflow_experiment_id="", mlflow_run_id="", domain=domain)
    run_folder(run)
    experiment_id, mlflow_run_id = start_mlflow_run(
        step_workspace(run),
        config,
        domain=domain,
        run_name=run_name,
        tags={"fourds.kind": kind, "fourds.domain": domain, "fourds.zenml_run_id": orchestrator_run_id},
    )
    return run.model_copy(update={"mlflow_experiment_id": experiment_id, "mlflow_run_id": mlflow_run_id,
                                  "mlflow_tracking_uri": mlflow.get_tracking_uri()})


def mark_failed(run: RunContext) -> None:
    """End the run's MLflow run as FAILED (its pipeline failed); a no-op when it already ended FAILED."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=run.mlflow_tracking_uri or None)
    if client.get_run(run.mlflow_run_id).info.status != "FAILED":
        client.set_terminated(run.mlflow_run_id, "FAILED")


def step_workspace(run: RunContext) -> Workspace:
    """The workspace this piece works in, on this machine (see the module docstring)."""
    return Workspace(Path(os.environ.get(STEP_WORKSPACE_ENV) or run.workspace_root)).ensure()


def run_folder(run: RunContext) -> Path:
    """This machine's folder of the run: reports, checkpoints and local copies of the run's files."""
    folder = step_workspace(run).run_dir(run.run_name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def tracked(run: RunContext, config: RunConfig) -> Iterator[mlflow.ActiveRun]:
    """The run's MLflow run, active inside the ``with`` block (marked FAILED if the block raises)."""
    # The store the run was created in, wherever this piece runs (a server, or the starting workspace's SQLite).
    tracking = config.tracking.model_copy(update={"tracking_uri": run.mlflow_tracking_uri or config.tracking.tracking_uri})
    with resumed_mlflow_run(step_workspace(run).root, tracking, experiment_id=run.mlflow_experiment_id,
                            run_id=run.mlflow_run_id) as active:
        yield active


def training_callbacks(config: RunConfig, run: RunContext, *, prefix: str = "") -> tuple[list, Path]:
    """Inside :func:`tracked`: the trainer callbacks of a run's training and its checkpoint folder.

    Metrics and curves go to MLflow. When checkpoints are mirrored (``tracking.mirror_checkpoints``),
    the run's mirrored checkpoints are first restored into the folder, so that a retried step
    resumes where the killed one stopped, on whatever machine it runs.
    """
    from fourds.tracking.training import CheckpointMirror, MlflowMetricsCallback, mirrors_checkpoints, restore_checkpoints

    checkpoints = run_folder(run) / "checkpoints"
    callbacks = [MlflowMetricsCallback(prefix=prefix)]
    if mirrors_checkpoints(mlflow.get_tracking_uri(), config.tracking.mirror_checkpoints):
        restore_checkpoints(checkpoints)
        callbacks.append(CheckpointMirror(checkpoints))
    return callbacks, checkpoints
