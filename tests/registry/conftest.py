"""A real MLflow (SQLite tracking + registry) per test, in the test's own workspace.

Creating MLflow's schema takes seconds, so it is built once per session and every test
gets a fresh copy of that empty database: full isolation without paying the migration
each time.
"""

from __future__ import annotations

import shutil

import mlflow
import pytest
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from fourds.config import TrackingConfig
from fourds.registry.tracking import configure_mlflow
from fourds.workspace import Workspace


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-template")
    database = folder / "mlflow.db"
    SqlAlchemyStore(f"sqlite:///{database}", (folder / "unused-artifacts").as_uri()).engine.dispose()
    return database


@pytest.fixture
def workspace(tmp_path, empty_mlflow_db, monkeypatch) -> Workspace:
    """A workspace whose MLflow is the default local SQLite store, configured and empty."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # anything written relative to the cwd would show up here
    workspace = Workspace(tmp_path / "workspace").ensure()
    shutil.copy(empty_mlflow_db, workspace.mlflow_db)
    configure_mlflow(workspace, TrackingConfig())
    yield workspace
    while mlflow.active_run() is not None:
        mlflow.end_run()
