"""What a run records about its inputs: the whole configuration and the domain's datasets."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import mlflow
import yaml

from fourds.config import RunConfig
from fourds.tracking.store import require_active_run

CONFIG_ARTIFACT = "config/run_config.yaml"
CONFIG_HASH_TAG = "fourds.config_hash"


def flatten_params(values: dict, parent: str = "") -> dict[str, str]:
    """Nested mapping -> ``{"train.optimizers.student.lr": "0.01"}``; lists become JSON."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{parent}.{key}" if parent else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten_params(value, name))
        elif isinstance(value, list | tuple | dict):
            flat[name] = json.dumps(value)
        else:
            flat[name] = str(value)
    return flat


def log_config(config: RunConfig) -> None:
    """Log the whole configuration to the active run: flattened params, the YAML, and its hash as a tag."""
    require_active_run("log_config")
    dumped = config.model_dump(mode="json")
    mlflow.log_params(flatten_params(dumped))
    mlflow.log_text(yaml.safe_dump(dumped, sort_keys=False), CONFIG_ARTIFACT)
    mlflow.set_tag(CONFIG_HASH_TAG, config.config_hash())


DATASET_CONTEXTS = {"train": "training", "val": "validation", "test": "testing", "unlabelled": "unlabelled"}
"""The MLflow input context of each split of a domain's image table."""


def log_domain_datasets(table_path: str | Path, *, domain: str, domain_md5: str, source: str) -> list[str]:
    """Record a domain's splits as the active run's dataset inputs (``mlflow.log_input``); returns their names.

    One dataset per split of the per-image table (``images.csv``), named ``<domain>/<split>``
    with the split's context (``training``, ``validation``, ``testing``, ``unlabelled``), its
    rows (path, label, content hash...) as the profile and schema, and the DVC md5 of the
    domain folder as its digest: the MLflow run page then says exactly which data, by the
    same hash ``dvc`` and the lineage tags use.
    """
    import mlflow.data

    from fourds.data.table import read_image_table

    require_active_run("log_domain_datasets")
    table = read_image_table(table_path)
    names = []
    for split, rows in table.groupby("split", sort=False):
        name = f"{domain}/{split}"
        with warnings.catch_warnings():  # MLflow's hints on an ambiguous local source and on integer columns
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(rows.reset_index(drop=True), source=source, name=name,
                                              digest=domain_md5)
            mlflow.log_input(dataset, context=DATASET_CONTEXTS.get(str(split), str(split)),
                             tags={"fourds.data_domain_md5": domain_md5})
        names.append(name)
    return names


