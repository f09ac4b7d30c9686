"""Training metrics, histories and learning curves into the active MLflow run (a trainer callback).

Kept apart from the rest of ``fourds.tracking`` so that the registry and ``fourds status``
never load the training stack and the plots.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

from fourds.evaluation.plots import plot_learning_curves
from fourds.tracking.store import is_sqlite, require_active_run
from fourds.training.callbacks import Callback

if TYPE_CHECKING:
    from fourds.training.trainer import TrainResult


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
        active = require_active_run("MlflowMetricsCallback")
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


CHECKPOINT_ARTIFACTS = "checkpoints"
"""Where mirrored training checkpoints sit among a run's MLflow artifacts."""


class CheckpointMirror(Callback):
    """Copies every checkpoint the trainer writes under ``local_root`` to the active MLflow run
    (``checkpoints/<path below local_root>/``): durable storage that a retried step resumes from,
    on whichever machine it lands (:func:`restore_checkpoints`). Each copy replaces the last one."""

    def __init__(self, local_root: Path):
        self.local_root = Path(local_root)
        self._run_id: str | None = None

    def on_train_start(self, info: dict) -> None:
        self._run_id = require_active_run("CheckpointMirror").info.run_id

    def on_checkpoint(self, step: int, path: Path) -> None:
        if self._run_id is None:
            raise RuntimeError("CheckpointMirror received a checkpoint before on_train_start")
        relative = Path(path).parent.relative_to(self.local_root).as_posix()
        folder = CHECKPOINT_ARTIFACTS if relative == "." else f"{CHECKPOINT_ARTIFACTS}/{relative}"
        MlflowClient().log_artifact(self._run_id, str(path), folder)


def restore_checkpoints(local_root: Path) -> list[Path]:
    """Bring the active MLflow run's mirrored checkpoints back under ``local_root`` (a retried step on a fresh
    machine); returns the checkpoint files restored, none when the run has none yet."""
    run_id = require_active_run("restore_checkpoints").info.run_id
    if not MlflowClient().list_artifacts(run_id, CHECKPOINT_ARTIFACTS):
        return []
    local_root = Path(local_root)
    with tempfile.TemporaryDirectory(prefix="fourds-checkpoints-") as scratch:
        downloaded = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=CHECKPOINT_ARTIFACTS,
                                                              dst_path=scratch))
        restored = []
        for file in sorted(downloaded.rglob("*")):
            if file.is_file():
                target = local_root / file.relative_to(downloaded)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(file, target)  # /tmp and the workspace may be different filesystems
                restored.append(target)
    return restored


def mirrors_checkpoints(tracking_uri: str, configured: bool | None) -> bool:
    """``tracking.mirror_checkpoints``, with None meaning: when tracking is not a local SQLite store."""
    return configured if configured is not None else not is_sqlite(tracking_uri)
