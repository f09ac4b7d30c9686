import pytest
import torch
from torch import nn

from fourds.method import FusionActivation, phase_map


def test_identical_phases_cost_nothing():
    fusion = FusionActivation([8, 16], [8, 16], gate_reduction=4)
    phases = [phase_map(torch.relu(torch.randn(2, 8, 8, 8))), phase_map(torch.relu(torch.randn(2, 16, 4, 4)))]
    assert fusion(phases, phases).item() == 0.0
    assert 0.0 < fusion.gate_mean < 1.0


def test_differing_phases_cost_something_and_train_the_gate():
    torch.manual_seed(0)
    fusion = FusionActivation([8, 16], [8, 16], gate_reduction=4)
    teacher = [torch.rand(2, 8, 8, 8), torch.rand(2, 16, 4, 4)]
    student = [torch.rand(2, 8, 8, 8), torch.rand(2, 16, 4, 4)]
    loss = fusion(student, teacher)
    loss.backward()
    assert loss.item() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in fusion.gate.parameters())


def test_student_features_are_projected_to_teacher_widths_before_their_phase():
    fusion = FusionActivation([8, 16], [4, 16], gate_reduction=4)
    assert isinstance(fusion.projections[0], nn.Conv2d) and isinstance(fusion.projections[1], nn.Identity)
    features = [torch.relu(torch.randn(2, 4, 8, 8)), torch.relu(torch.randn(2, 16, 4, 4))]
    phases = fusion.student_phases(features)
    assert [p.shape[1] for p in phases] == [8, 16]
    with torch.no_grad():
        assert torch.allclose(phases[0], phase_map(fusion.projections[0](features[0])))
        assert torch.equal(phases[1], phase_map(features[1]))


def test_maps_are_pooled_to_the_smaller_last_stage():
    fusion = FusionActivation([8, 16], [8, 16], gate_reduction=4)
    teacher = [torch.rand(2, 8, 8, 8), torch.rand(2, 16, 4, 4)]
    coarser_student = [torch.rand(2, 8, 4, 4), torch.rand(2, 16, 2, 2)]
    assert torch.isfinite(fusion(coarser_student, teacher))


def test_stage_counts_must_match():
    with pytest.raises(ValueError, match="2 teacher stages and 1 student stages"):
        FusionActivation([8, 16], [8])


def test_circular_distance_is_one_minus_cos_weighted_by_the_squared_gate():
    torch.manual_seed(0)
    fusion = FusionActivation([2], [2], gate_reduction=1, distance="circular")
    student = [torch.zeros(1, 2, 3, 3)]
    teacher = [torch.full((1, 2, 3, 3), torch.pi / 2)]
    teacher[0][0, 1] = torch.pi  # channel 1: opposite phases, channel 0: a quarter turn apart

    loss = fusion(student, teacher)

    with torch.no_grad():
        gate = fusion.gate(torch.cos(teacher[0]).mean(dim=(2, 3)))[0]  # the gate sees mean cos of the teacher phases
    by_hand = (gate[0] ** 2 * (1 - 0.0) + gate[1] ** 2 * (1 - -1.0)) / 2  # mean over 2 channels of a^2 (1 - cos)
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert fusion.gate_mean == pytest.approx(gate.mean().item())


def test_circular_distance_respects_wrap_around_where_the_reference_does_not():
    near_pi, near_minus_pi = [torch.full((1, 1, 3, 3), 3.1)], [torch.full((1, 1, 3, 3), -3.1)]
    circular = FusionActivation([1], [1], gate_reduction=1, distance="circular")
    angle = FusionActivation([1], [1], gate_reduction=1, distance="angle")
    gate = angle.gate  # the same gate weights for both
    circular.gate = gate
    # 3.1 and -3.1 are 0.083 rad apart: 1 - cos(0.083) = 0.0035, while raw angles differ by 6.2.
    assert circular(near_pi, near_minus_pi).item() < 0.0035
    assert angle(near_pi, near_minus_pi).item() > 1.0


def test_unknown_distance_is_refused():
    with pytest.raises(ValueError, match="circular"):
        FusionActivation([1], [1], distance="euclid")


def test_circular_distance_pools_phasors_not_angles_across_stages():
    """Two stages (6x6 and 3x3) pooled to 3x3: each 2x2 block of the first is averaged as unit vectors."""
    torch.manual_seed(1)
    fusion = FusionActivation([1, 1], [1, 1], gate_reduction=1, distance="circular")
    student = [torch.rand(1, 1, 6, 6) * 6 - 3, torch.rand(1, 1, 3, 3) * 6 - 3]
    teacher = [torch.rand(1, 1, 6, 6) * 6 - 3, torch.rand(1, 1, 3, 3) * 6 - 3]

    loss = fusion(student, teacher)

    def phasors(phases):  # (cos, sin) per stage, the 6x6 one averaged over 2x2 blocks, channels concatenated
        first = phases[0].reshape(1, 1, 3, 2, 3, 2)
        cos = torch.cat([torch.cos(first).mean(dim=(3, 5)), torch.cos(phases[1])], dim=1)
        sin = torch.cat([torch.sin(first).mean(dim=(3, 5)), torch.sin(phases[1])], dim=1)
        return cos, sin

    (student_cos, student_sin), (teacher_cos, teacher_sin) = phasors(student), phasors(teacher)
    with torch.no_grad():
        gate = fusion.gate(teacher_cos.mean(dim=(2, 3)))[:, :, None, None]
    by_hand = (gate**2 * ((student_cos - teacher_cos) ** 2 + (student_sin - teacher_sin) ** 2) / 2).mean()
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-5)
