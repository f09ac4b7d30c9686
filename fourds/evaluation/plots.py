"""PNG figures of an evaluation and a training history, attached to MLflow runs as artifacts.

Uses matplotlib's Agg backend through explicit ``Figure`` objects (never ``pyplot``),
so plotting works in headless pipeline steps and never touches global figure state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fourds.evaluation.metrics import ClassifierEvaluation

# Beyond this many classes, cell annotations become unreadable and are left out.
_MAX_ANNOTATED_CLASSES = 20


def plot_confusion_matrix(evaluation: ClassifierEvaluation, path: str | Path, *, title: str = "Confusion matrix") -> Path:
    """Row-normalised heatmap (each true class sums to 1) annotated with the raw counts."""
    classes = evaluation.classes
    counts = evaluation.confusion_matrix
    n = len(classes)
    normalised = [[c / max(sum(row), 1) for c in row] for row in counts]

    side = min(4 + 0.45 * n, 20)
    figure = Figure(figsize=(side + 1.5, side))
    axes = figure.add_subplot()
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
    axes.set_xticks(range(n), labels=classes, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    axes.set_yticks(range(n), labels=classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"{title}\naccuracy {evaluation.accuracy:.3f} on {evaluation.num_samples} images")
    if n <= _MAX_ANNOTATED_CLASSES:
        for i in range(n):
            for j in range(n):
                colour = "white" if normalised[i][j] > 0.5 else "black"
                axes.text(j, i, str(counts[i][j]), ha="center", va="center", color=colour, fontsize=9)
    return _save(figure, path)


def plot_reliability_diagram(evaluation: ClassifierEvaluation, path: str | Path, *, title: str = "Reliability") -> Path:
    """Accuracy against confidence per bin, with the diagonal of perfect calibration."""
    bins = evaluation.calibration
    width = bins[0].upper - bins[0].lower if bins else 1.0
    figure = Figure(figsize=(5.5, 5))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    filled = [b for b in bins if b.count]
    axes.bar(
        [b.lower for b in filled],
        [b.accuracy for b in filled],
        width=width,
        align="edge",
        edgecolor="black",
        color="tab:blue",
        alpha=0.8,
        label="accuracy",
    )
    axes.plot(
        [b.mean_confidence for b in filled],
        [b.mean_confidence for b in filled],
        "o",
        color="tab:red",
        markersize=4,
        label="mean confidence",
    )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence (top-class probability)")
    axes.set_ylabel("accuracy")
    axes.set_title(f"{title}\nECE {evaluation.ece:.3f} ({len(bins)} bins, {evaluation.num_samples} images)")
    axes.legend(loc="upper left")
    return _save(figure, path)


def plot_learning_curves(
    history: Sequence[dict[str, float]],
    path: str | Path,
    *,
    x_key: str = "epoch",
    title: str = "Learning curves",
) -> Path:
    """One panel per kind of metric (losses, accuracies, learning rates, others) against ``x_key``.

    ``history`` is the trainer's ``TrainResult.history``: dicts of metrics, each with
    ``step`` and ``epoch``. A metric absent from some entries is drawn where present.
    """
    if not history:
        raise ValueError("plot_learning_curves: the history is empty; there is nothing to plot")
    if any(x_key not in entry for entry in history):
        raise ValueError(f"plot_learning_curves: every history entry needs {x_key!r} (the x axis)")

    names = sorted({name for entry in history for name in entry if name not in ("step", "epoch")})
    panels: dict[str, list[str]] = {"loss": [], "accuracy": [], "learning rate": [], "other": []}
    for name in names:
        panels[_panel_of(name)].append(name)
    panels = {panel: members for panel, members in panels.items() if members}
    if not panels:
        raise ValueError("plot_learning_curves: the history holds no metrics besides step/epoch")

    columns = min(len(panels), 2)
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(6.5 * columns, 4.2 * rows))
    figure.suptitle(title)
    for index, (panel, members) in enumerate(panels.items(), start=1):
        axes = figure.add_subplot(rows, columns, index)
        for name in members:
            points = [(entry[x_key], entry[name]) for entry in history if _is_number(entry.get(name))]
            if points:
                xs, ys = zip(*points, strict=True)
                axes.plot(xs, ys, marker="o" if len(points) < 30 else None, markersize=3, label=name)
        axes.set_xlabel(x_key)
        axes.set_title(panel)
        axes.grid(alpha=0.3)
        if panel == "accuracy":
            axes.set_ylim(0, 1.02)
        axes.legend(fontsize=8)
    return _save(figure, path)


def _panel_of(name: str) -> str:
    lowered = name.lower()
    if lowered.startswith("lr/") or lowered == "lr":
        return "learning rate"
    if "acc" in lowered:
        return "accuracy"
    if "grad_norm" in lowered:
        return "other"
    # The trainer's train/* terms are named loss terms (train/student/kd) and objectives.
    if "loss" in lowered or "objective" in lowered or lowered.startswith("train/"):
        return "loss"
    return "other"


def _is_number(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path
