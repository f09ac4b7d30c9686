"""Each 4Ds and KD term on fixed small inputs, computed by hand: which rows, which direction, which weight.

The networks are tiny and BatchNorm-free outside the adapters, so the expected values
are plain formulas of the networks' outputs on the same batch. A swapped KL direction,
a cross-entropy over unlabelled rows, a label-free term over labelled rows only, or a
mixed-up weight each changes a value checked here.
"""

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fourds.config import FourDsConfig
from fourds.method import FourDs, KnowledgeDistillation
from fourds.models.taps import StageTaps

TAU = 3.0
KD_WEIGHT = 0.5
FUSION_WEIGHT = 0.3


def _tiny_net(seed: int) -> nn.Module:
    """Two stages and a classifier; the classifier is scaled up so that KL(p||q) and KL(q||p) differ clearly."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        OrderedDict(
            stage1=nn.Conv2d(3, 4, 3, padding=1),
            stage2=nn.Conv2d(4, 4, 3, stride=2, padding=1),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(4, 3),
        )
    )
    with torch.no_grad():
        net.fc.weight.mul_(20)
    return net


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(p/T) || softmax(q/T)) per row, summed over classes, written out."""
    p = torch.softmax(p_logits / TAU, dim=1)
    return (p * (torch.log(p) - torch.log_softmax(q_logits / TAU, dim=1))).sum(dim=1)


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(7)
    images = torch.randn(2, 3, 8, 8, generator=generator)
    unlabelled = torch.randn(4, 3, 8, 8, generator=generator)
    return images, torch.tensor([0, 2]), unlabelled


def test_fourds_step_ce_on_labelled_rows_and_label_free_terms_on_all_rows(batch):
    images, labels, unlabelled = batch
    # The reference adapters (an even amplitude mix at the start moves the teacher far enough from the student
    # for the two KL directions to differ clearly), and no information maximisation in the adapters' objective.
    config = FourDsConfig(kd_temperature=TAU, kd_weight=KD_WEIGHT, fusion_weight=FUSION_WEIGHT, adapter_initial_mix=0.5,
                          adapter_bn_affine=False, adapter_tune_early=False, adapter_im_weight=0.0)
    method = FourDs(
        _tiny_net(0), _tiny_net(1), config, teacher_stages=["stage1", "stage2"], student_stages=["stage1", "stage2"],
        input_shape=(3, 8, 8),
    ).train()
    assert method.fusion_stages == [0, 1]  # 8x8 and 4x4 maps

    out = method.training_step(images, labels, unlabelled)

    every_row = torch.cat([images, unlabelled])
    with torch.no_grad():
        student_logits = method.student(every_row)
        teacher_logits, _ = method.adapted_teacher(every_row)
    losses = {name: value.detach() for name, value in out.losses.items()}
    expected = {
        "student/ce": F.cross_entropy(student_logits[:2], labels),
        "adapters/ce": F.cross_entropy(teacher_logits[:2], labels),
        # The student learns KL(teacher || student); the adapters KL(student || teacher); over all 6 rows.
        "student/kd": TAU**2 * _kl(teacher_logits, student_logits).mean(),
        "adapters/kd": TAU**2 * _kl(student_logits, teacher_logits).mean(),
    }
    for name, value in expected.items():
        assert torch.allclose(losses[name], value, rtol=1e-5, atol=1e-5), name
    assert abs(expected["student/kd"] - expected["adapters/kd"]) > 0.1 * expected["student/kd"]  # the directions differ here
    assert torch.allclose(
        out.objectives["student"].detach(),
        expected["student/ce"] + KD_WEIGHT * expected["student/kd"] + FUSION_WEIGHT * losses["student/fusion"],
        atol=1e-5,
    )
    assert torch.allclose(
        out.objectives["adapters"].detach(), expected["adapters/ce"] + KD_WEIGHT * expected["adapters/kd"], atol=1e-5
    )
    assert torch.allclose(out.logits, student_logits[:2], atol=1e-6)


def test_fourds_fusion_term_covers_the_unlabelled_rows(batch):
    images, labels, unlabelled = batch
    method = FourDs(
        _tiny_net(0), _tiny_net(1), FourDsConfig(), teacher_stages=["stage1", "stage2"],
        student_stages=["stage1", "stage2"], input_shape=(3, 8, 8),
    ).train()
    fusion = method.training_step(images, labels, unlabelled).losses["student/fusion"].detach()

    # The same term computed outside the step: both networks on all 6 rows, stage i paired with stage i.
    every_row = torch.cat([images, unlabelled])
    with torch.no_grad(), StageTaps(method.student, ["stage1", "stage2"]) as taps:
        method.student(every_row)
        student_features = taps.outputs()
        _, teacher_phases = method.adapted_teacher(every_row)
        expected = method.fusion(method.fusion.student_phases(student_features), teacher_phases)
        labelled_rows_only = method.fusion(
            method.fusion.student_phases([f[:2] for f in student_features]), [p[:2] for p in teacher_phases]
        )
    assert torch.allclose(fusion, expected, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(fusion, labelled_rows_only, rtol=1e-3)


@pytest.mark.parametrize("teacher_bn", ["frozen", "adapt"])
def test_kd_step_ce_on_labelled_rows_and_kd_on_all_rows(batch, teacher_bn):
    images, labels, unlabelled = batch
    teacher = nn.Sequential(_tiny_net(0)[:2], nn.BatchNorm2d(4), *_tiny_net(0)[2:])
    student = _tiny_net(1)
    running_mean = teacher[1].running_mean.clone()
    method = KnowledgeDistillation(teacher, student, temperature=TAU, kd_weight=KD_WEIGHT, teacher_bn=teacher_bn).train()
    assert teacher[1].training == (teacher_bn == "adapt") and not teacher[0].training

    out = method.training_step(images, labels, unlabelled)

    every_row = torch.cat([images, unlabelled])
    with torch.no_grad():
        student_logits = student(every_row)
        teacher_logits = teacher(every_row)  # the same BatchNorm mode: batch statistics of all rows under "adapt"
    assert torch.allclose(out.losses["student/ce"].detach(), F.cross_entropy(student_logits[:2], labels), atol=1e-5)
    assert torch.allclose(
        out.losses["student/kd"].detach(), TAU**2 * _kl(teacher_logits, student_logits).mean(), atol=1e-5
    )
    assert torch.allclose(
        out.objectives["student"].detach(),
        out.losses["student/ce"].detach() + KD_WEIGHT * out.losses["student/kd"].detach(),
    )
    assert torch.equal(teacher[1].running_mean, running_mean) == (teacher_bn == "frozen")
