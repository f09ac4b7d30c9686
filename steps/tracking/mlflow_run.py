"""One MLflow run per pipeline run: created by the first step, resumed by the steps that log.

Steps may run in different processes (remote orchestrators), so they share the run by
id, never through MLflow's in-process "active run". Resuming inside ``with`` marks the
MLflow run FAILED when the step raises, so a failed pipeline is visible in MLflow too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow

from fourds.config import RunConfig
from fourds.lineage.record import code_commit
from fourds.registry.tracking import configure_mlflow, experiment_for_domain, log_config
from fourds.workspace import Workspace
from steps.artifacts import RunContext


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
def resumed_mlflow_run(run: RunContext, config: RunConfig) -> Iterator[mlflow.ActiveRun]:
    """Reopen the pipeline's MLflow run for the duration of one step."""
    configure_mlflow(Workspace(Path(run.workspace_root)), config.tracking)
    # MLflow refuses to resume a run of another experiment than the process's active one.
    mlflow.set_experiment(experiment_id=run.mlflow_experiment_id)
    with mlflow.start_run(run_id=run.mlflow_run_id) as active:
        yield active
