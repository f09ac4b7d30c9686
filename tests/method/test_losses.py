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


def test_information_maximisation_matches_the_hand_computed_value():
    from fourds.method.losses import information_maximisation

    # Rows with probabilities (1/4, 3/4) and (3/4, 1/4): each entropy 0.5623, the mean prediction (1/2, 1/2)
    # has entropy ln 2 = 0.6931, so the objective is 0.5623 - 0.6931 = -0.1308 (a swapped sign gives +0.1308).
    logits = torch.log(torch.tensor([[0.25, 0.75], [0.75, 0.25]]))
    assert information_maximisation(logits).item() == pytest.approx(-0.130812, abs=1e-5)
    # Confident and all one class: no entropy either way, 0; confident and spread: -ln 2, the minimum.
    assert information_maximisation(torch.tensor([[20.0, 0.0], [20.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)
    assert information_maximisation(torch.tensor([[20.0, 0.0], [0.0, 20.0]])).item() == pytest.approx(-0.693147, abs=1e-5)
