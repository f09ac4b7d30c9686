"""Unlabelled batches: which images each step draws, for which methods, and across a resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from fourds.config import RunConfig, TrainConfig
from fourds.method.base import Method, StepOutput
from fourds.training import Trainer
from fourds.training.recipes import distill
from fourds.training.trainer import unlabelled_batch_indices


class IndexedImages(Dataset):
    """Image ``i`` is filled with the value ``i`` (label -1), and every read is logged: a step's
    unlabelled batch can be read back from its pixels, and a method that never draws leaves no read."""

    def __init__(self, size: int, side: int = 4):
        self.size, self.side = size, side
        self.reads: list[int] = []

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        self.reads.append(index)
        return torch.full((3, self.side, self.side), float(index)), -1


def test_unlabelled_batches_are_pinned_by_seed_and_step():
    # Pinned: a change of the draw would silently change every semi-supervised result.
    assert unlabelled_batch_indices(0, 5, 2, range(5)) == [[4, 3], [0, 2], [1, 4], [2, 3], [4, 2]]
    # Each pass is a permutation cut into size // batch_size batches; passes are independent of the start.
    assert unlabelled_batch_indices(0, 5, 2, range(3, 5)) == unlabelled_batch_indices(0, 5, 2, range(5))[3:]
    assert unlabelled_batch_indices(1, 5, 2, range(2)) != unlabelled_batch_indices(0, 5, 2, range(2))
    # Fewer images than a batch: every step gets all of them.
    assert all(sorted(batch) == [0, 1, 2] for batch in unlabelled_batch_indices(0, 3, 8, range(4)))


class UnlabelledRecorder(Method):
    """Records the unlabelled images of each step (by their pixel value)."""

    name = "unlabelled_recorder"
    uses_unlabelled = True

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
        self.seen: list[list[int]] = []

    def parameter_groups(self):
        return {"student": list(self.net.parameters())}

    def training_step(self, images, labels, unlabelled=None):
        self.seen.append([] if unlabelled is None else unlabelled[:, 0, 0, 0].long().tolist())
        logits = self.net(images)
        loss = nn.functional.cross_entropy(logits, labels)
        return StepOutput(losses={"student/ce": loss}, objectives={"student": loss}, logits=logits.detach())

    def evaluated_models(self):
        return {"student": self.net}


class Labelled(Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, index):
        return torch.randn(3, 4, 4), index % 3


def _train_config(**overrides) -> TrainConfig:
    return TrainConfig.model_validate(
        {"max_steps": 5, "progress": False, "device": "cpu", "seed": 4, "checkpoint_every_steps": 2} | overrides
    )


def test_each_step_draws_its_pinned_unlabelled_batch_and_a_resume_continues_the_sequence(tmp_path):
    unlabelled = IndexedImages(7)
    expected = unlabelled_batch_indices(4, 7, 3, range(5))

    straight = UnlabelledRecorder()
    result = Trainer(straight, _train_config(), batch_size=2, unlabelled_batch_size=3).fit(
        Labelled(), unlabelled_set=unlabelled
    )
    assert straight.seen == expected
    assert result.unlabelled_images == 7

    class StopAfterStep4(Exception):
        pass

    class Interrupt:
        def __getattr__(self, hook):
            return lambda *args: None

        def on_checkpoint(self, step, path):
            if step == 4:
                raise StopAfterStep4

    first = UnlabelledRecorder()
    with pytest.raises(StopAfterStep4):
        Trainer(first, _train_config(), batch_size=2, unlabelled_batch_size=3, checkpoint_dir=tmp_path,
                callbacks=[Interrupt()]).fit(Labelled(), unlabelled_set=unlabelled)
    resumed = UnlabelledRecorder()
    Trainer(resumed, _train_config(), batch_size=2, unlabelled_batch_size=3, checkpoint_dir=tmp_path).fit(
        Labelled(), unlabelled_set=unlabelled
    )
    assert first.seen == expected[:4] and resumed.seen == expected[4:]


def test_a_method_without_label_free_terms_never_loads_unlabelled_images():
    from fourds.method import Supervised

    unlabelled = IndexedImages(7)
    result = Trainer(
        Supervised(nn.Sequential(nn.Flatten(), nn.Linear(48, 3))), _train_config(), batch_size=2, unlabelled_batch_size=3
    ).fit(Labelled(), unlabelled_set=unlabelled)
    assert unlabelled.reads == [] and result.unlabelled_images == 0


ARCH, SIDE = "shufflenet_v2_x0_5", 48


def _run_config(method: str) -> RunConfig:
    tiny_run = {"max_steps": 2, "progress": False, "device": "cpu", "seed": 5}
    return RunConfig.model_validate(
        {
            "method": method,
            "guard": {"scratch_baseline": False},
            "model": {"teacher_arch": ARCH, "student_arch": ARCH},
            "data": {"image_size": SIDE, "batch_size": 2, "eval_batch_size": 4, "unlabelled_batch_ratio": 1.5},
            "train": tiny_run,
            "teacher_train": tiny_run,
        }
    )


def test_kd_two_stage_and_4ds_draw_the_same_unlabelled_images_at_each_step():
    from torch.utils.data import TensorDataset

    from fourds.models import build_classifier

    torch.manual_seed(0)
    teacher = build_classifier(ARCH, 3).eval()
    generator = torch.Generator().manual_seed(0)
    labelled = TensorDataset(torch.randn(4, 3, SIDE, SIDE, generator=generator), torch.tensor([0, 1, 2, 0]))
    reads = {}
    for method in ("kd", "two_stage", "4ds", "student_scratch"):
        unlabelled = IndexedImages(5, side=SIDE)
        result = distill(_run_config(method), teacher, labelled, None, num_classes=3, unlabelled_set=unlabelled)
        reads[method] = (unlabelled.reads, result.unlabelled_images)
    # ratio 1.5 x batch 2 = 3 unlabelled images a step, 2 steps, in the order the seed fixes.
    expected = [index for batch in unlabelled_batch_indices(5, 5, 3, range(2)) for index in batch]
    assert reads["kd"] == reads["two_stage"] == reads["4ds"] == (expected, 5)
    assert reads["student_scratch"] == ([], 0)
