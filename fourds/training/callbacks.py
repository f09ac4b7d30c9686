"""Hooks through which a training run reports itself (MLflow logging, tests, custom monitors).

Subclass :class:`Callback` and override what you need; every hook is a no-op by
default. Metric names:

* per step: ``train/<loss term>`` (e.g. ``train/student/kd``), ``train/objective/<group>``,
  ``train/<extra>`` (a method's diagnostics), ``train/acc`` (running accuracy of the
  student over the current epoch), ``lr/<group>`` (the learning rate that step used),
  ``train/grad_norm/<group>`` (only when gradient clipping is on);
* per evaluation: ``val/<role>_acc`` and ``val/<role>_loss`` (cross-entropy) for every
  model of ``Method.evaluated_models()``, e.g. ``val/student_acc``,
  ``val/adapted_teacher_acc``;
* per epoch: the means of the ``train/*`` step metrics over the epoch (``train/acc`` is
  the epoch's accuracy), plus the ``val/*`` metrics when an evaluation ran at that epoch end.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fourds.training.trainer import TrainResult


class Callback:
    """Base class of training hooks; the trainer calls them in the order given."""

    def on_train_start(self, info: dict) -> None:
        """Once per ``fit``: description, method, budget, sizes, device, resumed step."""

    def on_step_end(self, step: int, metrics: dict[str, float]) -> None:
        """After optimiser step number ``step`` (1-based, counted over the whole run)."""

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        """After a validation pass at ``step``."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """After epoch number ``epoch`` (1 for the first); the final epoch may be partial."""

    def on_checkpoint(self, step: int, path: Path) -> None:
        """After a checkpoint of ``step`` has been written completely to ``path``."""

    def on_train_end(self, result: TrainResult) -> None:
        """Once, after the selected weights are in place."""
