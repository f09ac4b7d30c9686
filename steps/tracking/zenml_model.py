"""Facts recorded on the ZenML model version (Model Control Plane) a run is linked to."""

from __future__ import annotations

from zenml import get_step_context, log_metadata


def log_model_metadata(metadata: dict) -> None:
    """Log onto the run's ZenML model version; a run configured without a model has none to log to."""
    if get_step_context().model_version is not None:
        log_metadata(metadata=metadata, infer_model=True)
