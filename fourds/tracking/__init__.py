"""MLflow tracking: where records go, one MLflow run per pipeline run, and what a run logs.

Light on purpose: the registry builds on :mod:`fourds.tracking.store`. The trainer
callback that logs training curves lives in :mod:`fourds.tracking.training` and is not
imported here, so ``fourds status`` and the registry never load the training stack.
"""

from fourds.tracking.run_log import CONFIG_ARTIFACT, CONFIG_HASH_TAG, log_config, log_domain_datasets
from fourds.tracking.runs import resumed_mlflow_run, start_mlflow_run
from fourds.tracking.store import configure_mlflow, experiment_for_domain

__all__ = [
    "CONFIG_ARTIFACT",
    "CONFIG_HASH_TAG",
    "configure_mlflow",
    "experiment_for_domain",
    "log_config",
    "log_domain_datasets",
    "resumed_mlflow_run",
    "start_mlflow_run",
]
