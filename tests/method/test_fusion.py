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
