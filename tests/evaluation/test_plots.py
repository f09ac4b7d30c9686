import pytest
import torch
from PIL import Image

from fourds.evaluation.metrics import evaluate_logits
from fourds.evaluation.plots import plot_confusion_matrix, plot_learning_curves, plot_reliability_diagram


def _evaluation():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    logits = torch.randn(60, 3, generator=generator) + 2.5 * torch.nn.functional.one_hot(labels, 3)
    return evaluate_logits(logits, labels, ["zero", "one", "two"])


def _is_png(path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_confusion_matrix_and_reliability_diagram_are_written_as_png(tmp_path):
    evaluation = _evaluation()
    confusion = plot_confusion_matrix(evaluation, tmp_path / "plots" / "confusion.png", title="student on usps")
    reliability = plot_reliability_diagram(evaluation, tmp_path / "reliability.png")

    width, height = _is_png(confusion)
    assert width > 300 and height > 300
    assert _is_png(reliability)[0] > 300


def test_learning_curves_plot_a_trainer_history(tmp_path):
    history = [
        {"step": 10, "epoch": 1.0, "train/student/ce": 1.2, "train/acc": 0.4, "val/student_acc": 0.5, "lr/student": 0.01},
        {"step": 15, "epoch": 1.5, "val/student_acc": 0.55},
        {"step": 20, "epoch": 2.0, "train/student/ce": 0.8, "train/acc": 0.6, "val/student_acc": 0.7, "lr/student": 0.005},
    ]
    path = plot_learning_curves(history, tmp_path / "curves.png")
    assert _is_png(path)[0] > 600  # four panels in two columns


def test_learning_curves_name_what_is_wrong_with_the_history(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plot_learning_curves([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="'epoch'"):
        plot_learning_curves([{"step": 1, "loss": 1.0}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="no metrics"):
        plot_learning_curves([{"step": 1, "epoch": 1.0}], tmp_path / "x.png")
