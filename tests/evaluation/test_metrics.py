import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from fourds.evaluation.metrics import (
    calibration_bins,
    evaluate_classifier,
    evaluate_logits,
    evaluate_models,
    expected_calibration_error,
    metric_safe_name,
)


def test_ece_matches_a_hand_computed_value():
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.35, 0.65], [0.65, 0.35]])
    labels = torch.tensor([0, 1, 1, 0])
    # Confidences 0.9, 0.9 (bin 13 of 15: accuracy 0.5) and 0.65, 0.65 (bin 9: accuracy 1.0):
    # ECE = 2/4 * |0.5 - 0.9| + 2/4 * |1.0 - 0.65| = 0.2 + 0.175
    assert expected_calibration_error(probs, labels, bins=15) == pytest.approx(0.375)


def test_calibration_bins_are_upper_inclusive_and_cover_zero_and_one():
    probs = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.75, 0.25]])
    labels = torch.tensor([0, 0, 1])
    low, high = calibration_bins(probs, labels, bins=2)

    assert (low.count, high.count) == (1, 2)  # 0.5 is in (0, 0.5]; 0.75 and 1.0 in (0.5, 1]
    assert high.mean_confidence == pytest.approx(0.875)
    assert high.accuracy == pytest.approx(0.5)


def test_perfectly_calibrated_predictions_have_zero_ece():
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, torch.tensor([0, 1])) == pytest.approx(0.0)


def test_evaluate_logits_counts_confusion_and_per_class_recall():
    classes = ["cat", "dog", "owl/bird"]
    logits = torch.tensor([[3.0, 0, 0], [3.0, 0, 0], [0, 3.0, 0], [3.0, 0, 0], [0, 0, 3.0]])
    labels = torch.tensor([0, 0, 1, 1, 0])

    result = evaluate_logits(logits, labels, classes)

    assert result.confusion_matrix == [[2, 0, 1], [1, 1, 0], [0, 0, 0]]
    assert result.accuracy == pytest.approx(3 / 5)
    assert result.per_class_accuracy["cat"] == pytest.approx(2 / 3)
    assert result.per_class_accuracy["dog"] == pytest.approx(1 / 2)
    assert math.isnan(result.per_class_accuracy["owl/bird"])
    assert result.num_samples == 5
    assert result.nll == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item())
    assert len(result.calibration) == 15

    metrics = result.to_metrics("test/student/")
    assert metrics["test/student/accuracy"] == pytest.approx(0.6)
    assert metrics["test/student/class_accuracy/dog"] == pytest.approx(0.5)
    assert not any("owl" in key for key in metrics)  # no samples: not logged as a number
    assert set(metrics) >= {"test/student/ece", "test/student/nll", "test/student/num_samples"}


def test_evaluate_logits_names_shape_and_label_problems():
    with pytest.raises(ValueError, match="3 classes but 2 class names"):
        evaluate_logits(torch.zeros(2, 3), torch.tensor([0, 1]), ["a", "b"])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        evaluate_logits(torch.zeros(2, 2), torch.tensor([0, 2]), ["a", "b"])
    with pytest.raises(ValueError, match="no samples"):
        evaluate_logits(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), ["a", "b"])


def test_evaluate_classifier_runs_the_model_over_the_dataset():
    # An identity "model" over a dataset of logits makes the expected result exact.
    logits = torch.tensor([[2.0, 1.0], [0.0, 5.0], [4.0, 1.0], [1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 1])
    dataset = TensorDataset(logits, labels)

    result = evaluate_classifier(nn.Identity(), dataset, ["a", "b"], batch_size=3)
    by_role = evaluate_models({"student": nn.Identity(), "teacher": nn.Identity()}, dataset, ["a", "b"], batch_size=2)

    assert result.accuracy == pytest.approx(0.5)
    assert result.confusion_matrix == [[1, 0], [2, 1]]
    assert set(by_role) == {"student", "teacher"}
    assert by_role["teacher"].accuracy == result.accuracy


def test_metric_safe_name_keeps_readable_names():
    assert metric_safe_name("traffic light") == "traffic light"
    assert metric_safe_name("owl/bird:1") == "owl_bird_1"
