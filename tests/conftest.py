"""Shared test set-up: small thread count, analytics off, and the real-data locator."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before any stack import: no telemetry, no network calls from the stack.
os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test when the real benchmark data is absent."""
    if not (SHARED_DATA / "mnist.tar.gz").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (../shared/data is only present on project machines)")
    return SHARED_DATA
