"""The scratch guard's decision: which of two students a user gets.

A teacher from another domain can be wrong on the target in ways a few labels cannot
undo, and distilling from it can leave the student below one trained on the target
labels alone. ``distill`` (see :mod:`fourds.training.recipes`) therefore trains that
plain student too when ``config.guard.scratch_baseline`` is on, and this module scores
both on the validation split and keeps the better one. The test split is never read
here: the choice must not peek at the numbers it is later judged by.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset

from fourds.evaluation.metrics import evaluate_classifier

KEPT_DISTILLED = "distilled"
KEPT_SCRATCH = "scratch"
SKIPPED = "skipped"


@dataclass(frozen=True)
class GuardReport:
    """What the guard compared and decided."""

    decision: str
    """``distilled``, ``scratch``, or ``skipped`` (no validation images to judge on)."""
    method: str
    """The distillation method that was guarded (e.g. ``4ds``)."""
    distilled_val_accuracy: float | None = None
    scratch_val_accuracy: float | None = None
    val_images: int = 0
    margin: float = 0.0

    @property
    def kept_method(self) -> str:
        """The method that produced the student the user gets."""
        return "student_scratch" if self.decision == KEPT_SCRATCH else self.method

    def summary(self) -> str:
        """One line for logs, tags and the CLI."""
        if self.decision == SKIPPED:
            return f"skipped: no validation images, kept the {self.method} student unchecked"
        comparison = (
            f"validation accuracy {self.method} {self.distilled_val_accuracy:.4f}, "
            f"scratch {self.scratch_val_accuracy:.4f} on {self.val_images} images (margin {self.margin:g})"
        )
        return f"kept {self.kept_method}: {comparison}"

    def metrics(self) -> dict[str, float]:
        """``guard/*`` numbers for MLflow (absent when the guard was skipped)."""
        if self.decision == SKIPPED:
            return {}
        return {
            "guard/distilled_val_accuracy": self.distilled_val_accuracy,
            "guard/scratch_val_accuracy": self.scratch_val_accuracy,
            "guard/kept_scratch": float(self.decision == KEPT_SCRATCH),
        }


def choose_student(
    distilled: nn.Module,
    scratch: nn.Module,
    val_set: Dataset,
    *,
    method: str,
    num_classes: int,
    margin: float,
    batch_size: int,
    device: str | torch.device | None,
) -> GuardReport:
    """Score both students on ``val_set``; scratch wins only by more than ``margin`` (ties keep distilled)."""
    classes = [str(index) for index in range(num_classes)]
    distilled_accuracy = evaluate_classifier(distilled, val_set, classes, batch_size=batch_size, device=device).accuracy
    scratch_accuracy = evaluate_classifier(scratch, val_set, classes, batch_size=batch_size, device=device).accuracy
    decision = KEPT_SCRATCH if scratch_accuracy > distilled_accuracy + margin else KEPT_DISTILLED
    return GuardReport(
        decision=decision,
        method=method,
        distilled_val_accuracy=distilled_accuracy,
        scratch_val_accuracy=scratch_accuracy,
        val_images=len(val_set),
        margin=margin,
    )


def skipped(method: str) -> GuardReport:
    return GuardReport(decision=SKIPPED, method=method)
