from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from fourds.config import ConfigError, TrainConfig
from fourds.method.base import Method, StepOutput
from fourds.training import Callback, CheckpointMismatchError, NonFiniteLossError, Trainer
from fourds.training.checkpoints import load_checkpoint
from fourds.training.optimization import lr_factor


class TwoGroupMethod(Method):
    """A student and a helper whose objectives both depend on both networks.

    The cross-dependence is the point: each group must still be updated by its own
    objective's gradient only, as 4Ds's adapters and student are.
    """

    name = "two_group_test"

    def __init__(self, *, nan_at_call: int | None = None, dropout: float = 0.2):
        super().__init__()
        self.student = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(4, 3),
        )
        self.helper = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 3))
        self.nan_at_call = nan_at_call
        self.calls = 0
        self.batch_sizes: list[int] = []

    def parameter_groups(self):
        return {"student": list(self.student.parameters()), "adapters": list(self.helper.parameters())}

    def losses(self, images, labels):
        student_logits = self.student(images)
        helper_logits = self.helper(images)
        agreement = F.mse_loss(student_logits, helper_logits)
        return student_logits, {
            "student/ce": F.cross_entropy(student_logits, labels),
            "student/kd": agreement,
            "adapters/ce": F.cross_entropy(helper_logits, labels),
        }

    @staticmethod
    def objectives(losses):
        return {
            "student": losses["student/ce"] + losses["student/kd"],
            "adapters": losses["adapters/ce"] + 2 * losses["student/kd"],
        }

    def training_step(self, images, labels):
        self.calls += 1
        self.batch_sizes.append(images.shape[0])
        logits, losses = self.losses(images, labels)
        if self.calls == self.nan_at_call:
            losses["student/kd"] = losses["student/kd"] * float("nan")
        return StepOutput(
            losses=losses,
            objectives=self.objectives(losses),
            logits=logits,
            extras={"helper/weight_norm": self.helper[2].weight.norm().item()},
        )

    def evaluated_models(self):
        return {"student": self.student, "helper": self.helper}


class NoisyImages(Dataset):
    """Random augmentation drawing from torch, numpy and python's generators, like real transforms."""

    def __init__(self, size: int, *, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.randn(size, 3, 4, 4, generator=generator)
        self.labels = torch.arange(size) % 3

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        jitter = 0.1 * torch.randn(3, 4, 4) + 0.01 * float(np.random.rand()) + 0.01 * random.random()
        return self.images[index] + jitter, int(self.labels[index])


class Recorder(Callback):
    def __init__(self, method=None, *, interrupt_at_checkpoint: int | None = None):
        self.method = method
        self.interrupt_at_checkpoint = interrupt_at_checkpoint
        self.started: list[dict] = []
        self.steps: dict[int, dict[str, float]] = {}
        self.evals: dict[int, dict[str, float]] = {}
        self.states_at_eval: dict[int, dict[str, torch.Tensor]] = {}
        self.epochs: dict[int, dict[str, float]] = {}
        self.checkpoints: list[int] = []
        self.states_at_checkpoint: dict[int, dict[str, torch.Tensor]] = {}
        self.ended = []

    def on_train_start(self, info):
        self.started.append(info)

    def on_step_end(self, step, metrics):
        self.steps[step] = metrics

    def on_eval(self, step, metrics):
        self.evals[step] = metrics
        if self.method is not None:
            self.states_at_eval[step] = copy.deepcopy(self.method.state_dict())

    def on_epoch_end(self, epoch, metrics):
        self.epochs[epoch] = metrics

    def on_checkpoint(self, step, path):
        assert path.is_file()
        self.checkpoints.append(step)
        if self.method is not None:
            self.states_at_checkpoint[step] = copy.deepcopy(self.method.state_dict())
        if step == self.interrupt_at_checkpoint:
            raise KeyboardInterrupt

    def on_train_end(self, result):
        self.ended.append(result)


def _config(**overrides) -> TrainConfig:
    settings = {
        "epochs": 2,
        "progress": False,
        "device": "cpu",
        "optimizers": {
            "student": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
            "adapters": {"name": "adamw", "lr": 0.01, "eps": 1e-4},
        },
    }
    return TrainConfig.model_validate(settings | overrides)


def _assert_same_state(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(actual[name], value), name


def test_budget_drops_a_last_batch_of_one_and_reports_every_hook(tmp_path):
    method = TwoGroupMethod()
    recorder = Recorder()
    trainer = Trainer(method, _config(epochs=2), batch_size=3, callbacks=[recorder], checkpoint_dir=tmp_path)

    result = trainer.fit(NoisyImages(10), NoisyImages(5, seed=1))

    # 10 images in batches of 3 leave one image over: 3 steps per epoch, not 4.
    assert result.steps == 6 and sorted(recorder.steps) == [1, 2, 3, 4, 5, 6]
    assert method.batch_sizes == [3] * 6
    assert recorder.started[0]["steps_per_epoch"] == 3 and recorder.started[0]["total_steps"] == 6
    assert sorted(recorder.epochs) == [1, 2] and sorted(recorder.evals) == [3, 6]
    assert recorder.checkpoints == [3, 6]
    assert recorder.ended == [result]

    step_metrics = recorder.steps[4]
    assert {"train/student/ce", "train/student/kd", "train/adapters/ce", "train/objective/student"} <= set(step_metrics)
    assert {"lr/student", "lr/adapters", "train/acc", "train/helper/weight_norm"} <= set(step_metrics)
    assert set(recorder.evals[6]) == {"val/student_acc", "val/student_loss", "val/helper_acc", "val/helper_loss"}
    epoch_ce = [recorder.steps[step]["train/student/ce"] for step in (4, 5, 6)]
    assert recorder.epochs[2]["train/student/ce"] == pytest.approx(sum(epoch_ce) / 3)
    assert recorder.epochs[2]["val/student_acc"] == recorder.evals[6]["val/student_acc"]

    assert result.metrics["val/student_acc"] == recorder.evals[6]["val/student_acc"]
    assert [entry["step"] for entry in result.history] == [3, 6]
    assert result.images_per_second > 0 and result.wall_seconds > 0
    assert result.best_step is None
    assert result.checkpoint_path == tmp_path / "last.pt"


def test_learning_rates_follow_warmup_then_cosine_per_iteration():
    recorder = Recorder()
    config = _config(
        max_steps=6,
        optimizers={
            "student": {"name": "sgd", "lr": 0.1, "warmup_steps": 2, "schedule": "cosine"},
            "adapters": {"name": "adamw", "lr": 0.01, "schedule": "constant"},
        },
    )
    Trainer(TwoGroupMethod(), config, batch_size=4, callbacks=[recorder]).fit(NoisyImages(8))

    student_lrs = [recorder.steps[step]["lr/student"] for step in range(1, 7)]
    expected = [0.1 * lr_factor(s, total_steps=6, warmup_steps=2, schedule="cosine") for s in range(6)]
    assert student_lrs == pytest.approx(expected)
    assert {recorder.steps[step]["lr/adapters"] for step in range(1, 7)} == {0.01}


def test_each_group_is_updated_by_its_own_objective_only():
    method = TwoGroupMethod(dropout=0.0)
    before = copy.deepcopy(method)
    dataset = NoisyImages(4)
    images, labels = dataset.images, dataset.labels
    sgd = {"name": "sgd", "lr": 1.0, "momentum": 0.0, "weight_decay": 0.0, "schedule": "constant"}
    config = _config(max_steps=1, optimizers={"student": sgd, "adapters": sgd})
    # No augmentation: the one batch is the whole (permuted) dataset.
    Trainer(method, config, batch_size=4).fit(TensorDataset(images, labels))

    _, losses = before.losses(images, labels)
    objectives = before.objectives(losses)
    for group, params_before, params_after in (
        ("student", before.student.parameters(), method.student.parameters()),
        ("adapters", before.helper.parameters(), method.helper.parameters()),
    ):
        params_before = list(params_before)
        own = torch.autograd.grad(objectives[group], params_before, retain_graph=True)
        other_group = "adapters" if group == "student" else "student"
        leaked = torch.autograd.grad(objectives[other_group], params_before, retain_graph=True)
        assert any(g.abs().sum() > 1e-4 for g in leaked), "the test needs cross-dependent objectives"
        for old, new, grad in zip(params_before, params_after, own, strict=True):
            torch.testing.assert_close(new.detach(), old.detach() - grad, atol=1e-6, rtol=1e-5)


def test_resume_mid_epoch_reproduces_an_uninterrupted_run_exactly(tmp_path):
    # 10 images, batches of 4: 3 steps per epoch; the interruption at step 4 is mid-epoch.
    config = _config(max_steps=8, checkpoint_every_steps=4, eval_every_steps=3, selection="best_val")
    train_set, val_set = NoisyImages(10), NoisyImages(6, seed=1)

    torch.manual_seed(0)
    straight_method = TwoGroupMethod()
    straight = Recorder()
    straight_result = Trainer(
        straight_method, config, batch_size=4, callbacks=[straight], checkpoint_dir=tmp_path / "straight"
    ).fit(train_set, val_set)

    torch.manual_seed(0)
    first_half = Recorder(interrupt_at_checkpoint=4)
    with pytest.raises(KeyboardInterrupt):
        Trainer(
            TwoGroupMethod(), config, batch_size=4, callbacks=[first_half], checkpoint_dir=tmp_path / "resumed"
        ).fit(train_set, val_set)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["run_state"]["step"] == 4

    torch.manual_seed(123)  # a different initialisation: the checkpoint must overwrite it
    resumed_method = TwoGroupMethod()
    second_half = Recorder()
    resumed_result = Trainer(
        resumed_method, config, batch_size=4, callbacks=[second_half], checkpoint_dir=tmp_path / "resumed"
    ).fit(train_set, val_set)

    assert second_half.started[0]["start_step"] == 4
    assert sorted(first_half.steps) == [1, 2, 3, 4] and sorted(second_half.steps) == [5, 6, 7, 8]
    assert first_half.steps | second_half.steps == straight.steps
    _assert_same_state(resumed_method.state_dict(), straight_method.state_dict())
    assert resumed_result.history == straight_result.history
    assert resumed_result.best_step == straight_result.best_step
    assert resumed_result.metrics == straight_result.metrics


def test_resuming_a_finished_run_returns_without_training(tmp_path):
    config = _config(max_steps=3)
    Trainer(TwoGroupMethod(), config, batch_size=4, checkpoint_dir=tmp_path).fit(NoisyImages(8))
    recorder = Recorder()
    result = Trainer(TwoGroupMethod(), config, batch_size=4, checkpoint_dir=tmp_path, callbacks=[recorder]).fit(
        NoisyImages(8)
    )
    assert result.steps == 3 and recorder.steps == {}


def test_non_finite_loss_names_step_and_term_and_keeps_the_last_checkpoint(tmp_path):
    method = TwoGroupMethod(nan_at_call=5)
    recorder = Recorder(method)
    trainer = Trainer(
        method,
        _config(max_steps=8, checkpoint_every_steps=2),
        batch_size=4,
        callbacks=[recorder],
        checkpoint_dir=tmp_path,
    )
    with pytest.raises(NonFiniteLossError, match=r"^step 5: loss 'student/kd' is nan") as caught:
        trainer.fit(NoisyImages(8))

    assert caught.value.step == 5 and "objective 'student'" in caught.value.problems
    assert recorder.checkpoints == [2, 4]
    saved = load_checkpoint(tmp_path / "last.pt")
    assert saved["run_state"]["step"] == 4
    _assert_same_state(saved["method_state"], recorder.states_at_checkpoint[4])
    # The failing step updated no parameter (its forward pass did move BatchNorm statistics).
    for name, param in method.named_parameters():
        assert torch.equal(param, recorder.states_at_checkpoint[4][name]), name
    assert all(torch.isfinite(value).all() for value in saved["method_state"].values() if value.is_floating_point())


@pytest.mark.parametrize("selection", ["best_val", "last"])
def test_selection_keeps_the_best_or_the_last_validated_state(selection):
    class LinearMethod(Method):
        name = "linear_test"

        def __init__(self):
            super().__init__()
            self.student = nn.Sequential(nn.Flatten(), nn.Linear(2, 2))

        def parameter_groups(self):
            return {"student": list(self.student.parameters())}

        def training_step(self, images, labels):
            logits = self.student(images)
            loss = F.cross_entropy(logits, labels)
            return StepOutput(losses={"student/ce": loss}, objectives={"student": loss}, logits=logits)

        def evaluated_models(self):
            return {"student": self.student}

    points = torch.randn(16, 2, 1, 1, generator=torch.Generator().manual_seed(0))
    labels = (points[:, 0, 0, 0] > 0).long()
    # Validation labels are the opposite rule: the better the fit, the worse validation gets.
    train_set, val_set = TensorDataset(points, labels), TensorDataset(points, 1 - labels)
    torch.manual_seed(0)
    method = LinearMethod()
    recorder = Recorder(method)
    sgd = {"name": "sgd", "lr": 0.5, "schedule": "constant"}
    config = _config(max_steps=8, eval_every_steps=1, selection=selection, optimizers={"student": sgd})

    result = Trainer(method, config, batch_size=8, callbacks=[recorder]).fit(train_set, val_set)

    accs = {step: metrics["val/student_acc"] for step, metrics in recorder.evals.items()}
    best_step = max(accs, key=lambda step: (accs[step], -step))
    assert best_step < 8, "the test needs validation accuracy to peak before the end"
    kept_step = best_step if selection == "best_val" else 8
    _assert_same_state(method.state_dict(), recorder.states_at_eval[kept_step])
    assert result.metrics["val/student_acc"] == accs[kept_step]
    assert result.best_step == (best_step if selection == "best_val" else None)


def test_checkpoint_of_another_config_or_method_is_refused(tmp_path):
    Trainer(TwoGroupMethod(), _config(max_steps=2), batch_size=4, checkpoint_dir=tmp_path).fit(NoisyImages(8))

    with pytest.raises(CheckpointMismatchError, match=r"train.max_steps: 2 in the checkpoint, 3 now"):
        Trainer(TwoGroupMethod(), _config(max_steps=3), batch_size=4, checkpoint_dir=tmp_path).fit(NoisyImages(8))

    class OtherMethod(TwoGroupMethod):
        name = "other_test"

    with pytest.raises(CheckpointMismatchError, match=r"method_name: 'two_group_test' in the checkpoint, 'other_test'"):
        Trainer(OtherMethod(), _config(max_steps=2), batch_size=4, checkpoint_dir=tmp_path).fit(NoisyImages(8))

    with pytest.raises(CheckpointMismatchError, match=r"train_size: 8 in the checkpoint, 9 now"):
        Trainer(TwoGroupMethod(), _config(max_steps=2), batch_size=4, checkpoint_dir=tmp_path).fit(NoisyImages(9))

    # Display and device settings may change between sessions; resume=False starts over.
    Trainer(TwoGroupMethod(), _config(max_steps=2, progress=True), batch_size=4, checkpoint_dir=tmp_path).fit(
        NoisyImages(8)
    )
    result = Trainer(TwoGroupMethod(), _config(max_steps=3), batch_size=4, checkpoint_dir=tmp_path).fit(
        NoisyImages(8), resume=False
    )
    assert load_checkpoint(result.checkpoint_path)["run_state"]["step"] == 3


def test_a_group_without_an_optimiser_is_a_config_error():
    class GatedMethod(TwoGroupMethod):
        def parameter_groups(self):
            return {"student": list(self.student.parameters()), "gate": list(self.helper.parameters())}

    with pytest.raises(ConfigError, match=r"group 'gate' .* add train.optimizers.gate"):
        Trainer(GatedMethod(), _config(), batch_size=4).fit(NoisyImages(8))


def test_best_val_without_a_validation_set_and_tiny_training_sets_are_errors():
    with pytest.raises(ValueError, match="best_val' needs a validation set"):
        Trainer(TwoGroupMethod(), _config(selection="best_val"), batch_size=4).fit(NoisyImages(8))
    with pytest.raises(ValueError, match="1 image"):
        Trainer(TwoGroupMethod(), _config(), batch_size=4).fit(NoisyImages(1))
    with pytest.raises(ValueError, match="batch_size=1 cannot train a model with BatchNorm"):
        Trainer(TwoGroupMethod(), _config(), batch_size=1).fit(NoisyImages(8))


def test_gradient_clipping_bounds_each_groups_update_and_is_logged():
    method = TwoGroupMethod(dropout=0.0)
    before = {name: value.detach().clone() for name, value in method.named_parameters()}
    sgd = {"name": "sgd", "lr": 1.0, "momentum": 0.0, "weight_decay": 0.0, "schedule": "constant"}
    recorder = Recorder()
    config = _config(max_steps=1, max_grad_norm=1e-3, optimizers={"student": sgd, "adapters": sgd})

    Trainer(method, config, batch_size=4, callbacks=[recorder]).fit(NoisyImages(4))

    for prefix, group in (("student.", "student"), ("helper.", "adapters")):
        moved = torch.cat([(p - before[n]).flatten() for n, p in method.named_parameters() if n.startswith(prefix)])
        assert moved.norm().item() == pytest.approx(1e-3, rel=1e-3)  # clipped: the raw gradients are far larger
        assert recorder.steps[1][f"train/grad_norm/{group}"] > 1e-2


def test_objectives_must_match_the_declared_groups():
    class Forgetful(TwoGroupMethod):
        def training_step(self, images, labels):
            out = super().training_step(images, labels)
            del out.objectives["adapters"]
            return out

    with pytest.raises(ValueError, match=r"objectives for \['student'\] but parameter_groups\(\) declares"):
        Trainer(Forgetful(), _config(), batch_size=4).fit(NoisyImages(8))
