"""A real ZenML local store in a temporary folder, shared by the pipeline tests of one session.

Creating a store costs ZenML tens of seconds (database migrations), so one store serves
every test here; each test still gets its own fourds workspace and MLflow database.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def zenml_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    config_dir = tmp_path_factory.mktemp("zenml")
    previous = os.environ.get("ZENML_CONFIG_PATH")
    os.environ["ZENML_CONFIG_PATH"] = str(config_dir)
    os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
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
