"""Shared test set-up: small thread count, analytics off, and the real-data locator."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

# Before any stack import: no telemetry, no network calls from the stack.
os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

# Several test processes share two cores here: OpenMP threads that spin while waiting
# for each other made a 2-thread run ~10x slower than 1 thread. Passive waiting avoids it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test when the real benchmark data is absent."""
    if not (SHARED_DATA / "mnist.tar.gz").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (../shared/data is only present on project machines)")
    return SHARED_DATA


# A real MLflow (SQLite tracking + registry) per test, in the test's own workspace. Creating
# MLflow's schema takes seconds, so it is built once per session and every test gets a fresh
# copy of that empty database: full isolation without paying the migration each time.


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory):
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = tmp_path_factory.mktemp("mlflow-template")
    database = folder / "mlflow.db"
    SqlAlchemyStore(f"sqlite:///{database}", (folder / "unused-artifacts").as_uri()).engine.dispose()
    return database


@pytest.fixture
def workspace(tmp_path, empty_mlflow_db, monkeypatch):
    """A workspace whose MLflow is the default local SQLite store, configured and empty."""
    import mlflow

    from fourds.config import TrackingConfig
    from fourds.tracking.store import configure_mlflow
    from fourds.workspace import Workspace

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # anything written relative to the cwd would show up here
    workspace = Workspace(tmp_path / "workspace").ensure()
    shutil.copy(empty_mlflow_db, workspace.mlflow_db)
    configure_mlflow(workspace, TrackingConfig())
    yield workspace
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture(scope="session")
def zenml_store(tmp_path_factory: pytest.TempPathFactory):
    """A real ZenML local store in a temporary folder, shared by every test of the session.

    Creating a store costs ZenML tens of seconds (database migrations), so one serves all.
    """
    config_dir = tmp_path_factory.mktemp("zenml")
    previous = os.environ.get("ZENML_CONFIG_PATH")
    os.environ["ZENML_CONFIG_PATH"] = str(config_dir)
    _forget_zenml_singletons()
    from zenml.client import Client

    Client().active_stack_model  # creates the store now, not inside the first test's timing
    yield config_dir
    _forget_zenml_singletons()
    if previous is None:
        os.environ.pop("ZENML_CONFIG_PATH", None)
    else:
        os.environ["ZENML_CONFIG_PATH"] = previous


def _forget_zenml_singletons() -> None:
    """If ZenML was already used in this process, make it re-read ZENML_CONFIG_PATH."""
    if "zenml.client" not in sys.modules:
        return
    from zenml.client import Client
    from zenml.config.global_config import GlobalConfiguration

    GlobalConfiguration._reset_instance()
    Client._reset_instance()
