from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import TensorDataset

from fourds.config import RunConfig
from fourds.training import Callback, CheckpointMismatchError
from fourds.training.recipes import DistillResult, distill, train_teacher

# The smallest torchvision CNN with four tappable stages keeps every recipe at a second or two;
# at 48 px its last stage is still 2x2, so 4Ds's fusion-activation is not inert.
ARCH = "shufflenet_v2_x0_5"
SIDE = 48
NUM_CLASSES = 3


def _config(method: str = "4ds", *, guard: bool = False, **train_overrides) -> RunConfig:
    """Guard off unless asked: most tests look at one method's stages alone."""
    tiny_run = {"max_steps": 1, "progress": False, "device": "cpu"} | train_overrides
    return RunConfig.model_validate(
        {
            "method": method,
            "guard": {"scratch_baseline": guard},
            "model": {"teacher_arch": ARCH, "student_arch": ARCH},
            "data": {"image_size": SIDE, "batch_size": 4, "eval_batch_size": 4},
            "train": tiny_run,
            "teacher_train": tiny_run,
        }
    )


@pytest.fixture(scope="module")
def target_data() -> tuple[TensorDataset, TensorDataset]:
    generator = torch.Generator().manual_seed(0)
    train = TensorDataset(torch.randn(4, 3, SIDE, SIDE, generator=generator), torch.tensor([0, 1, 2, 0]))
    val = TensorDataset(torch.randn(3, 3, SIDE, SIDE, generator=generator), torch.tensor([0, 1, 2]))
    return train, val


@pytest.fixture(scope="module")
def teacher(target_data):
    trained = train_teacher(_config(), *target_data, num_classes=NUM_CLASSES)
    assert trained.result.steps == 1 and "val/student_acc" in trained.result.metrics
    assert not trained.model.training and next(trained.model.parameters()).device.type == "cpu"
    return trained.model


class Recorder(Callback):
    def __init__(self):
        self.step_metric_names: list[set[str]] = []
        self.ends = []

    def on_step_end(self, step, metrics):
        self.step_metric_names.append(set(metrics))

    def on_train_end(self, result):
        self.ends.append(result)


def _snapshot(model):
    return {
        "state": copy.deepcopy(model.state_dict()),
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "modes": [m.training for m in model.modules()],
    }


def _assert_unchanged(model, snapshot):
    state = model.state_dict()
    assert state.keys() == snapshot["state"].keys()
    assert all(torch.equal(state[name], value) for name, value in snapshot["state"].items())
    assert [p.requires_grad for p in model.parameters()] == snapshot["requires_grad"]
    assert [m.training for m in model.modules()] == snapshot["modes"]


@pytest.mark.parametrize("method", ["4ds", "kd", "student_scratch"])
def test_every_method_trains_a_student_and_leaves_the_teacher_untouched(method, teacher, target_data):
    before = _snapshot(teacher)
    recorder = Recorder()

    result = distill(_config(method), teacher, *target_data, num_classes=NUM_CLASSES, callbacks=[recorder])

    _assert_unchanged(teacher, before)
    assert isinstance(result, DistillResult) and result.method == method
    assert not result.student.training and next(result.student.parameters()).device.type == "cpu"
    assert result.student(torch.zeros(2, 3, SIDE, SIDE)).shape == (2, NUM_CLASSES)
    assert result.train_results["distill"].steps == 1
    assert result.wall_seconds >= sum(result.stage_seconds.values()) > 0
    assert result.images_per_second > 0
    assert "val/student_acc" in result.metrics
    assert (result.adapted_teacher is not None) == (method == "4ds")
    assert (result.finetuned_teacher is not None) == (method == "two_stage")
    if method == "4ds":
        assert "val/adapted_teacher_acc" in result.metrics
        assert result.adapted_teacher(torch.zeros(2, 3, SIDE, SIDE)).shape == (2, NUM_CLASSES)


def test_two_stage_fine_tunes_a_copy_and_reports_that_stage_under_its_own_names(teacher, target_data):
    before = _snapshot(teacher)
    recorder = Recorder()
    result = distill(_config("two_stage"), teacher, *target_data, num_classes=NUM_CLASSES, callbacks=[recorder])

    _assert_unchanged(teacher, before)
    assert result.adapted_teacher is None and result.train_results["distill"].steps == 1
    assert list(result.train_results) == ["finetune_teacher", "distill"]
    assert list(result.stage_seconds) == ["finetune_teacher", "distill"]
    finetuned = result.finetuned_teacher
    assert finetuned is not teacher and not finetuned.training
    assert any(
        not torch.equal(tuned, original)
        for tuned, original in zip(finetuned.parameters(), teacher.parameters(), strict=True)
    )
    finetune_names, distill_names = recorder.step_metric_names
    assert "finetune_teacher/train/teacher/ce" in finetune_names
    assert all(name.startswith("finetune_teacher/") for name in finetune_names)
    assert "train/student/kd" in distill_names
    assert "finetune_teacher/val/student_acc" in recorder.ends[0].metrics
    assert "finetune_teacher/val/student_acc" in result.metrics and "val/student_acc" in result.metrics


def test_distillation_resumes_its_own_checkpoint_and_refuses_another_teacher(teacher, target_data, tmp_path):
    config = _config("student_scratch")  # the teacher is still part of the run's identity
    train_set, _ = target_data
    first = distill(config, teacher, train_set, None, num_classes=NUM_CLASSES, checkpoint_dir=tmp_path)
    assert first.train_results["distill"].checkpoint_path == tmp_path / "distill" / "last.pt"

    recorder = Recorder()
    again = distill(
        config, teacher, train_set, None, num_classes=NUM_CLASSES, checkpoint_dir=tmp_path, callbacks=[recorder]
    )
    assert recorder.step_metric_names == []  # finished already: nothing retrained
    assert all(
        torch.equal(a, b) for a, b in zip(again.student.state_dict().values(), first.student.state_dict().values())
    )

    other_teacher = copy.deepcopy(teacher)
    with torch.no_grad():
        next(other_teacher.parameters()).add_(1.0)
    with pytest.raises(CheckpointMismatchError, match="checkpoint_key"):
        distill(config, other_teacher, train_set, None, num_classes=NUM_CLASSES, checkpoint_dir=tmp_path)


def test_unknown_method_is_refused_before_any_work(teacher, target_data):
    config = _config()
    object.__setattr__(config, "method", "mosaic")  # bypass validation, as a hand-built config could
    with pytest.raises(ValueError, match="unknown method 'mosaic'"):
        distill(config, teacher, *target_data, num_classes=NUM_CLASSES)


def test_two_stage_reports_the_teacher_as_fine_tuning_left_it(teacher, target_data):
    """Under teacher_bn='adapt' the KD stage moves the teacher's BatchNorm statistics; the reported
    fine-tuned teacher must not depend on how long the KD stage ran."""
    short = distill(_config("two_stage", max_steps=1), teacher, *target_data, num_classes=NUM_CLASSES)
    longer_kd = _config("two_stage", max_steps=3)
    longer_kd = longer_kd.model_copy(update={"teacher_train": _config("two_stage", max_steps=1).teacher_train})
    longer = distill(longer_kd, teacher, *target_data, num_classes=NUM_CLASSES)
    assert longer.train_results["distill"].steps == 3 and short.train_results["distill"].steps == 1
    _assert_unchanged(longer.finetuned_teacher, _snapshot(short.finetuned_teacher))


def test_networks_lists_every_trained_network_by_role_with_its_architecture_and_method():
    student, adapted, finetuned, runner_up = (torch.nn.Linear(1, 1) for _ in range(4))
    result = DistillResult(method="4ds", student=student, train_results={}, stage_seconds={}, wall_seconds=1.0,
                           images_per_second=1.0, adapted_teacher=adapted, scratch_student=runner_up,
                           teacher_arch="resnet34", student_arch="resnet18")

    networks = result.networks()
    assert {role: (n.model, n.arch, n.method) for role, n in networks.items()} == {
        "student": (student, "resnet18", "4ds"),
        "adapted_teacher": (adapted, "resnet34", "4ds"),
        "scratch_student": (runner_up, "resnet18", "student_scratch"),
    }
    two_stage = DistillResult(method="two_stage", student=student, train_results={}, stage_seconds={},
                              wall_seconds=1.0, images_per_second=1.0, finetuned_teacher=finetuned,
                              distilled_student=runner_up, teacher_arch="resnet34", student_arch="resnet18")
    assert {role: (n.model, n.arch, n.method) for role, n in two_stage.networks().items()} == {
        "student": (student, "resnet18", "two_stage"),
        "finetuned_teacher": (finetuned, "resnet34", "two_stage"),
        "distilled_student": (runner_up, "resnet18", "two_stage"),
    }
