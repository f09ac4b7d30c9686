"""How good a classifier is on a labelled split: accuracy, per class, confusion, calibration.

Everything is computed from the logits of :func:`fourds.evaluation.predict.predict_logits`,
so the numbers here, the trainer's validation and the ONNX parity check agree on what
the model predicted. :func:`evaluate_logits` is the pure part, usable on saved logits.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from fourds.evaluation.predict import predict_logits

DEFAULT_CALIBRATION_BINS = 15


@dataclass
class CalibrationBin:
    """One confidence bin ``(lower, upper]`` of a reliability diagram."""

    lower: float
    upper: float
    count: int
    mean_confidence: float
    accuracy: float


@dataclass
class ClassifierEvaluation:
    """The evaluation of one model on one split."""

    classes: list[str]
    accuracy: float
    per_class_accuracy: dict[str, float]
    """Recall of each class; NaN for a class with no sample in the split."""
    confusion_matrix: list[list[int]]
    """``[true][predicted]`` counts, in the order of ``classes``."""
    ece: float
    nll: float
    num_samples: int
    calibration: list[CalibrationBin]

    def to_metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat ``{name: value}`` for MLflow, e.g. ``prefix="test/student/"`` gives ``test/student/accuracy``.

        Per-class accuracies become ``<prefix>class_accuracy/<class>`` (class names reduced
        to characters MLflow accepts); classes absent from the split are left out.
        """
        metrics = {
            f"{prefix}accuracy": self.accuracy,
            f"{prefix}ece": self.ece,
            f"{prefix}nll": self.nll,
            f"{prefix}num_samples": float(self.num_samples),
        }
        for name, value in self.per_class_accuracy.items():
            if not math.isnan(value):
                metrics[f"{prefix}class_accuracy/{metric_safe_name(name)}"] = value
        return metrics


def evaluate_classifier(
    model: nn.Module,
    dataset: Dataset,
    classes: list[str],
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    progress: bool = False,
) -> ClassifierEvaluation:
    """Predict ``dataset`` with ``model`` and score the predictions (see :func:`evaluate_logits`)."""
    logits, labels = predict_logits(
        model, dataset, batch_size=batch_size, device=device, num_workers=num_workers, progress=progress
    )
    return evaluate_logits(logits, labels, classes)


def evaluate_models(
    models: dict[str, nn.Module],
    dataset: Dataset,
    classes: list[str],
    **predict_options,
) -> dict[str, ClassifierEvaluation]:
    """Evaluate several models (e.g. student, adapted teacher, source teacher) on one split."""
    return {role: evaluate_classifier(model, dataset, classes, **predict_options) for role, model in models.items()}


def evaluate_logits(
    logits: torch.Tensor, labels: torch.Tensor, classes: list[str], *, bins: int = DEFAULT_CALIBRATION_BINS
) -> ClassifierEvaluation:
    """Score ``(N, C)`` logits against ``(N,)`` integer labels indexing ``classes``."""
    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"evaluate_logits: expected logits (N, C) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    if labels.numel() == 0:
        raise ValueError("evaluate_logits: no samples to evaluate")
    num_classes = len(classes)
    if logits.shape[1] != num_classes:
        raise ValueError(
            f"evaluate_logits: the model predicts {logits.shape[1]} classes but {num_classes} class names were given"
        )
    labels = labels.long()
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"evaluate_logits: labels must lie in [0, {num_classes - 1}], found {labels.min().item()}..{labels.max().item()}"
        )

    logits = logits.float()
    predictions = logits.argmax(dim=1)
    confusion = torch.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    confusion = confusion.reshape(num_classes, num_classes)
    support = confusion.sum(dim=1)
    per_class = {
        name: (confusion[i, i].item() / support[i].item()) if support[i] > 0 else float("nan")
        for i, name in enumerate(classes)
    }
    probs = logits.softmax(dim=1)
    calibration = calibration_bins(probs, labels, bins=bins)
    return ClassifierEvaluation(
        classes=list(classes),
        accuracy=(predictions == labels).float().mean().item(),
        per_class_accuracy=per_class,
        confusion_matrix=confusion.tolist(),
        ece=_ece_from_bins(calibration, labels.numel()),
        nll=F.cross_entropy(logits, labels).item(),
        num_samples=labels.numel(),
        calibration=calibration,
    )


def calibration_bins(probs: torch.Tensor, labels: torch.Tensor, bins: int = DEFAULT_CALIBRATION_BINS) -> list[CalibrationBin]:
    """Split predictions into ``bins`` equal-width confidence bins ``(k/bins, (k+1)/bins]``.

    Confidence is the top-class probability; a confidence of exactly 0 falls into the first bin.
    """
    if bins < 1:
        raise ValueError(f"calibration needs at least one bin, got {bins}")
    confidence, predictions = probs.max(dim=1)
    correct = (predictions == labels).float()
    inner_edges = torch.linspace(0, 1, bins + 1, dtype=confidence.dtype)[1:-1]
    # right=False: a value equal to an edge goes to the bin below it, i.e. bins are (lo, hi].
    index = torch.bucketize(confidence, inner_edges, right=False)
    result = []
    for k in range(bins):
        in_bin = index == k
        count = int(in_bin.sum())
        result.append(
            CalibrationBin(
                lower=k / bins,
                upper=(k + 1) / bins,
                count=count,
                mean_confidence=confidence[in_bin].mean().item() if count else 0.0,
                accuracy=correct[in_bin].mean().item() if count else 0.0,
            )
        )
    return result


def expected_calibration_error(
    probs: torch.Tensor, labels: torch.Tensor, bins: int = DEFAULT_CALIBRATION_BINS
) -> float:
    """ECE: the sample-weighted mean gap between confidence and accuracy over confidence bins."""
    if probs.ndim != 2 or labels.ndim != 1 or probs.shape[0] != labels.shape[0]:
        raise ValueError(
            f"expected_calibration_error: expected probs (N, C) and labels (N,), got {tuple(probs.shape)} and {tuple(labels.shape)}"
        )
    if labels.numel() == 0:
        raise ValueError("expected_calibration_error: no samples")
    return _ece_from_bins(calibration_bins(probs, labels.long(), bins), labels.numel())


def _ece_from_bins(calibration: list[CalibrationBin], total: int) -> float:
    return sum(b.count / total * abs(b.accuracy - b.mean_confidence) for b in calibration)


def metric_safe_name(name: str) -> str:
    """A class name reduced to the characters MLflow allows in metric keys."""
    return re.sub(r"[^\w\-. ]", "_", name)
