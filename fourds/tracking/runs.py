"""One MLflow run per pipeline run: created once, then reopened by id for each piece of work that logs.

Pieces of one pipeline run may execute in different processes (remote orchestrators), so
they share the MLflow run by id, never through MLflow's in-process "active run".
Reopening inside ``with`` marks the MLflow run FAILED when the work raises, so a failed
pipeline is visible in MLflow too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow

from fourds.config import RunConfig, TrackingConfig
from fourds.lineage.record import code_commit
from fourds.tracking.run_log import log_config
from fourds.tracking.store import configure_mlflow, experiment_for_domain
from fourds.workspace import Workspace


def start_mlflow_run(
    workspace: Workspace, config: RunConfig, *, domain: str, run_name: str, tags: dict[str, str]
) -> tuple[str, str]:
    """Create the run in the domain's experiment and log the configuration; returns (experiment id, run id).

    The run is tagged with the code's git commit (``mlflow.source.git.commit``, which the
    MLflow UI shows as the run's source version, and ``fourds.code_commit``).
    """
    configure_mlflow(workspace, config.tracking)
    experiment_id = experiment_for_domain(domain, config.tracking, workspace=workspace)
    commit = code_commit()
    tags = {"mlflow.source.git.commit": commit, "fourds.code_commit": commit, **tags}
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as active:
        log_config(config)
        return experiment_id, active.info.run_id


@contextmanager
def resumed_mlflow_run(
    workspace_root: str | Path, tracking: TrackingConfig, *, experiment_id: str, run_id: str
) -> Iterator[mlflow.ActiveRun]:
    """Reopen a run created by :func:`start_mlflow_run` for the duration of the ``with`` block."""
    configure_mlflow(Workspace(Path(workspace_root)), tracking)
    # MLflow refuses to resume a run of another experiment than the process's active one.
    mlflow.set_experiment(experiment_id=experiment_id)
    with mlflow.start_run(run_id=run_id) as active:
        yield active
