import math

import pytest
import torch

from fourds.method import kd_loss, softened_kl


def test_kd_loss_matches_the_hand_computed_value_including_tau_squared():
    tau = 2.0
    # Row 1: teacher/tau = [ln 3, 0] -> p_T = [3/4, 1/4]; student [0, 0] -> p_S = [1/2, 1/2].
    #   KL(p_T || p_S) = 3/4 ln(3/4 / 1/2) + 1/4 ln(1/4 / 1/2) = 3/4 ln 1.5 - 1/4 ln 2 = 0.130812...
    # Row 2: identical logits -> KL = 0.
    # batchmean over 2 rows, times tau^2 = 4:  4 * 0.130812 / 2 = 0.261624...
    teacher = torch.tensor([[2 * math.log(3), 0.0], [1.0, -1.0]])
    student = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    row1 = 0.75 * math.log(1.5) - 0.25 * math.log(2)
    assert row1 == pytest.approx(0.1308120, abs=1e-6)
    assert kd_loss(student, teacher, tau).item() == pytest.approx(tau**2 * row1 / 2, abs=1e-6)
    assert kd_loss(student, teacher, tau).item() == pytest.approx(0.2616240, abs=1e-6)


def test_softened_kl_is_asymmetric_and_zero_on_equal_logits():
    p = torch.tensor([[2.0, 0.0, -1.0]])
    q = torch.tensor([[0.0, 1.0, 0.0]])
    assert softened_kl(p, p, 4.0).item() == pytest.approx(0.0, abs=1e-7)
    assert softened_kl(p, q, 1.0).item() != pytest.approx(softened_kl(q, p, 1.0).item(), abs=1e-4)


def test_kd_loss_rejects_logits_of_different_shapes():
    with pytest.raises(ValueError, match="one shape"):
        kd_loss(torch.zeros(2, 3), torch.zeros(2, 4), 4.0)
