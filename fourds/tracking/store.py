"""Where MLflow records go: the tracking and registry URI, and one experiment per domain.

Locally, tracking and the model registry share one SQLite file in the workspace and
artifacts stay in the workspace too (``Workspace.mlflow_artifacts_dir``), never in a
``./mlruns`` of whatever directory a command ran from. ``$MLFLOW_TRACKING_URI`` or
``TrackingConfig.tracking_uri`` points everything at a server instead.
"""

from __future__ import annotations

import os

import mlflow
from mlflow import MlflowClient

from fourds.config import TrackingConfig
from fourds.workspace import Workspace

_configured_workspace: Workspace | None = None


def configure_mlflow(workspace: Workspace, tracking: TrackingConfig | None = None) -> str:
    """Point MLflow tracking and registry at the configured URI (default: the workspace's SQLite file).

    Returns the URI. The workspace is remembered so that experiments created later by
    :func:`experiment_for_domain` keep their artifacts inside it.
    """
    global _configured_workspace
    tracking = tracking or TrackingConfig()
    uri = workspace.tracking_uri(tracking.tracking_uri)
    if is_sqlite(uri):
        workspace.state_dir.mkdir(parents=True, exist_ok=True)
        workspace.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
    # mlflow.set_*_uri also export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI, which
    # Workspace.tracking_uri reads as the user's override: a second workspace used in the
    # same process would then inherit the first one's store. Keep the user's variables as
    # they were.
    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _configured_workspace = workspace
    return uri


def experiment_for_domain(
    domain: str, tracking: TrackingConfig | None = None, *, workspace: Workspace | None = None
) -> str:
    """Get or create the experiment ``<experiment_prefix><domain>``, make it active, return its id.

    With a SQLite store the artifact location is ``<workspace>/.fourds/mlartifacts/<experiment>``
    (MLflow would otherwise use ``./mlruns`` of the current directory); a tracking server
    chooses its own. Use this rather than ``mlflow.set_experiment(name)``.
    """
    if not domain:
        raise ValueError("experiment_for_domain: the domain name is empty")
    tracking = tracking or TrackingConfig()
    name = f"{tracking.experiment_prefix}{domain}"
    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        artifact_location = None
        if is_sqlite(mlflow.get_tracking_uri()):
            workspace = workspace or _configured_workspace or Workspace.default()
            artifact_location = (workspace.mlflow_artifacts_dir / name).resolve().as_uri()
        experiment_id = client.create_experiment(name, artifact_location=artifact_location)
    else:
        if experiment.lifecycle_stage == "deleted":
            raise ValueError(
                f"MLflow experiment {name!r} was deleted; restore it (mlflow experiments restore "
                f"--experiment-id {experiment.experiment_id}) or use another experiment_prefix"
            )
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def require_active_run(who: str) -> mlflow.ActiveRun:
    active = mlflow.active_run()
    if active is None:
        raise RuntimeError(f"{who} needs an active MLflow run: call it inside `with mlflow.start_run():`")
    return active


def is_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:")
