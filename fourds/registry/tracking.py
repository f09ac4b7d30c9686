"""Where MLflow records go, and how a run's configuration and training metrics get there.

Locally, tracking and the model registry share one SQLite file in the workspace and
artifacts stay in the workspace too (``Workspace.mlflow_artifacts_dir``), never in a
``./mlruns`` of whatever directory a command ran from. ``$MLFLOW_TRACKING_URI`` or
``TrackingConfig.tracking_uri`` points everything at a server instead.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric

from fourds.config import RunConfig, TrackingConfig
from fourds.evaluation.plots import plot_learning_curves
from fourds.training.callbacks import Callback
from fourds.workspace import Workspace

if TYPE_CHECKING:
    from fourds.training.trainer import TrainResult

CONFIG_ARTIFACT = "config/run_config.yaml"
CONFIG_HASH_TAG = "fourds.config_hash"

_configured_workspace: Workspace | None = None


def configure_mlflow(workspace: Workspace, tracking: TrackingConfig | None = None) -> str:
    """Point MLflow tracking and registry at the configured URI (default: the workspace's SQLite file).

    Returns the URI. The workspace is remembered so that experiments created later by
    :func:`experiment_for_domain` keep their artifacts inside it.
    """
    global _configured_workspace
    tracking = tracking or TrackingConfig()
    uri = workspace.tracking_uri(tracking.tracking_uri)
    if _is_sqlite(uri):
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
        if _is_sqlite(mlflow.get_tracking_uri()):
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
    _require_active_run("log_config")
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

    _require_active_run("log_domain_datasets")
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


class MlflowMetricsCallback(Callback):
    """Sends a trainer's metrics to the MLflow run that is active when training starts.

    * steps: every ``log_every_steps``-th step's ``train/*`` and ``lr/*`` metrics, at that step;
    * evaluations: ``val/*`` at the global step;
    * epochs: ``epoch/<metric>`` at step = epoch number (the per-epoch learning curve);
    * end: ``final/<metric>``, throughput, the history as JSON and a learning-curve plot.

    ``prefix`` (e.g. ``"teacher/"``) keeps two trainings of one run apart. One callback
    may follow several stages of a recipe (``fourds.training.recipes``): a stage that
    names itself in ``on_train_start`` (``info["stage"]``, e.g. ``scratch_guard``,
    ``finetune_teacher``) gets its own artifact folder, ``training/[<prefix>/]<stage>/``,
    so its ``history.json`` and ``learning_curves.png`` sit beside the main stage's
    (``training/[<prefix>/]``) instead of replacing them; its metric names carry the stage
    already.
    """

    def __init__(self, prefix: str = "", *, log_every_steps: int = 10, plot_learning_curves: bool = True):
        if log_every_steps < 1:
            raise ValueError(f"log_every_steps must be >= 1, got {log_every_steps}")
        self.prefix = prefix
        self.log_every_steps = log_every_steps
        self.plot_learning_curves = plot_learning_curves
        self._run_id: str | None = None
        self._client: MlflowClient | None = None
        self._stage: str | None = None

    def on_train_start(self, info: dict) -> None:
        active = _require_active_run("MlflowMetricsCallback")
        self._run_id = active.info.run_id
        self._client = MlflowClient()
        self._stage = info.get("stage") or None
        # Params cannot change within a run and a resumed run starts elsewhere: an artifact can.
        mlflow.log_dict(info, f"{self._artifact_dir()}/train_info_step{info.get('start_step', 0)}.json")

    def on_step_end(self, step: int, metrics: dict[str, float]) -> None:
        if step == 1 or step % self.log_every_steps == 0:
            self._log(metrics, step)

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self._log(metrics, step)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self._log({f"epoch/{name}": value for name, value in metrics.items()}, epoch)

    def on_checkpoint(self, step: int, path: Path) -> None:
        stage = f"{self._stage}." if self._stage else ""
        self._client_for_run().set_tag(
            self._run_id, f"fourds.{self.prefix}{stage}last_checkpoint", f"{path} (step {step})"
        )

    def on_train_end(self, result: TrainResult) -> None:
        summary = {f"final/{name}": value for name, value in result.metrics.items()}
        summary |= {
            "final/steps": float(result.steps),
            "final/wall_seconds": result.wall_seconds,
            "final/images_per_second": result.images_per_second,
        }
        self._log(summary, result.steps)
        directory = self._artifact_dir()
        self._client_for_run().log_dict(self._run_id, {"history": result.history}, f"{directory}/history.json")
        if self.plot_learning_curves and result.history:
            with tempfile.TemporaryDirectory() as scratch:
                title = f"Learning curves ({self._artifact_dir().removeprefix('training/') or 'training'})"
                path = plot_learning_curves(result.history, Path(scratch) / "learning_curves.png", title=title)
                self._client_for_run().log_artifact(self._run_id, str(path), directory)

    def _log(self, metrics: dict[str, float], step: int) -> None:
        timestamp = int(time.time() * 1000)
        batch = [Metric(f"{self.prefix}{name}", float(value), timestamp, step) for name, value in metrics.items()]
        if batch:
            self._client_for_run().log_batch(self._run_id, metrics=batch)

    def _client_for_run(self) -> MlflowClient:
        if self._client is None or self._run_id is None:
            raise RuntimeError("MlflowMetricsCallback received a training event before on_train_start")
        return self._client

    def _artifact_dir(self) -> str:
        parts = [part for part in (self.prefix.strip("/"), self._stage) if part]
        return "/".join(["training", *parts])


def _require_active_run(who: str) -> mlflow.ActiveRun:
    active = mlflow.active_run()
    if active is None:
        raise RuntimeError(f"{who} needs an active MLflow run: call it inside `with mlflow.start_run():`")
    return active


def _is_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:")
