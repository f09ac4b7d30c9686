"""The scratch guard: the decision rule on hand-made models, and its place in ``distill``."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from fourds.training.guard import KEPT_DISTILLED, KEPT_SCRATCH, SKIPPED, choose_student
from fourds.training.recipes import distill
from tests.training.test_recipes import NUM_CLASSES, SIDE, _config, target_data, teacher  # noqa: F401 (fixtures)


class ReadsLabel(nn.Module):
    """Predicts the class written in an image's first pixel: right on every image of ``_labelled``."""

    def forward(self, images):
        return nn.functional.one_hot(images[:, 0, 0, 0].long(), NUM_CLASSES).float()


class AlwaysZero(nn.Module):
    def forward(self, images):
        return torch.tensor([10.0] + [0.0] * (NUM_CLASSES - 1)).expand(len(images), NUM_CLASSES)


def _labelled(labels: list[int]) -> TensorDataset:
    images = torch.zeros(len(labels), 3, 4, 4)
    images[:, 0, 0, 0] = torch.tensor(labels, dtype=torch.float)
    return TensorDataset(images, torch.tensor(labels))


def _choose(distilled, scratch, val_set, margin=0.0):
    return choose_student(distilled, scratch, val_set, method="4ds", num_classes=NUM_CLASSES, margin=margin,
                          batch_size=2, device="cpu")


def test_a_more_accurate_scratch_student_replaces_the_distilled_one():
    report = _choose(AlwaysZero(), ReadsLabel(), _labelled([0, 1, 2, 1]))
    assert report.decision == KEPT_SCRATCH and report.kept_method == "student_scratch"
    assert report.distilled_val_accuracy == pytest.approx(0.25) and report.scratch_val_accuracy == 1.0
    assert report.val_images == 4
    assert report.metrics() == {"guard/distilled_val_accuracy": 0.25, "guard/scratch_val_accuracy": 1.0,
                                "guard/kept_scratch": 1.0}
    assert report.summary().startswith("kept student_scratch: validation accuracy 4ds 0.2500, scratch 1.0000 on 4")


def test_the_distilled_student_is_kept_when_better_or_tied_or_within_the_margin():
    assert _choose(ReadsLabel(), AlwaysZero(), _labelled([0, 1, 2, 1])).decision == KEPT_DISTILLED
    tie = _choose(AlwaysZero(), AlwaysZero(), _labelled([0, 1]))
    assert tie.decision == KEPT_DISTILLED and tie.kept_method == "4ds"
    # scratch is right on 2/2, distilled on 1/2: a gain of exactly the margin is not enough
    assert _choose(AlwaysZero(), ReadsLabel(), _labelled([0, 1]), margin=0.5).decision == KEPT_DISTILLED
    assert _choose(AlwaysZero(), ReadsLabel(), _labelled([0, 1]), margin=0.49).decision == KEPT_SCRATCH


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.parametrize("method", ["4ds", "kd"])
def test_distill_hands_over_the_student_the_guard_chose(method, teacher, target_data):
    train_set, val_set = target_data
    guarded = distill(_config(method, guard=True), teacher, train_set, val_set, num_classes=NUM_CLASSES)
    unguarded = distill(_config(method), teacher, train_set, val_set, num_classes=NUM_CLASSES)
    scratch = distill(_config("student_scratch"), teacher, train_set, val_set, num_classes=NUM_CLASSES)

    report = guarded.guard
    assert report is not None and report.decision in (KEPT_DISTILLED, KEPT_SCRATCH)
    assert list(guarded.train_results) == ["distill", "scratch_guard"]
    assert guarded.train_results["scratch_guard"].steps == 1 and guarded.stage_seconds["scratch_guard"] > 0
    # The guard's scratch student is exactly a student_scratch run of the same seed and budget.
    kept_scratch = report.decision == KEPT_SCRATCH
    assert _same_weights(guarded.student, scratch.student if kept_scratch else unguarded.student)
    assert (guarded.distilled_student is not None) == kept_scratch
    assert (guarded.scratch_student is not None) == (not kept_scratch)
    if kept_scratch:
        assert _same_weights(guarded.distilled_student, unguarded.student)
    else:  # the scratch student the guard beat is handed over for evaluation beside the distilled one
        assert _same_weights(guarded.scratch_student, scratch.student)
    assert guarded.student_method == ("student_scratch" if kept_scratch else method)
    # The decision follows the validation accuracies it reports.
    def accuracy(model):
        images, labels = val_set.tensors
        with torch.no_grad():
            return (model(images).argmax(1) == labels).float().mean().item()
    assert report.scratch_val_accuracy == pytest.approx(accuracy(scratch.student))
    assert report.distilled_val_accuracy == pytest.approx(accuracy(unguarded.student))
    assert kept_scratch == (report.scratch_val_accuracy > report.distilled_val_accuracy)
    assert {"guard/distilled_val_accuracy", "guard/scratch_val_accuracy", "scratch_guard/val/student_acc"} <= set(
        guarded.metrics
    )


def test_without_validation_images_the_guard_warns_and_keeps_the_distilled_student(teacher, target_data):
    train_set, _ = target_data
    with pytest.warns(UserWarning, match="scratch guard skipped: no validation images"):
        result = distill(_config("kd", guard=True), teacher, train_set, None, num_classes=NUM_CLASSES)
    assert result.guard.decision == SKIPPED and result.student_method == "kd"
    assert "scratch_guard" not in result.train_results and result.guard.metrics() == {}


def test_student_scratch_needs_no_guard(teacher, target_data):
    result = distill(_config("student_scratch", guard=True), teacher, *target_data, num_classes=NUM_CLASSES)
    assert result.guard is None and list(result.train_results) == ["distill"]
