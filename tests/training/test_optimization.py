from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fourds.config import OptimizerConfig
from fourds.training.optimization import build_optimizer, build_scheduler, lr_factor


def test_warmup_ramps_linearly_then_cosine_starts_at_the_full_rate():
    factors = [lr_factor(step, total_steps=13, warmup_steps=3, schedule="cosine") for step in range(4)]
    assert factors == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_cosine_reaches_half_midway_and_zero_at_the_end_of_the_budget():
    def factor(step):
        return lr_factor(step, total_steps=12, warmup_steps=2, schedule="cosine")

    assert factor(2 + 5) == pytest.approx(0.5)
    assert factor(12) == pytest.approx(0.0, abs=1e-12)
    assert 0 < factor(11) < 0.03  # the last step still learns a little
    assert all(factor(s) > factor(s + 1) for s in range(2, 12))


def test_constant_schedule_holds_after_warmup():
    assert [lr_factor(s, total_steps=5, warmup_steps=1, schedule="constant") for s in range(5)] == [
        0.5,
        1.0,
        1.0,
        1.0,
        1.0,
    ]


def test_warmup_longer_than_the_budget_never_divides_by_zero():
    assert lr_factor(3, total_steps=3, warmup_steps=3, schedule="cosine") == 0.0


def test_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match="schedule 'linear'"):
        lr_factor(0, total_steps=3, warmup_steps=0, schedule="linear")


def test_scheduler_applies_the_factor_per_iteration():
    param = nn.Parameter(torch.zeros(1))
    config = OptimizerConfig(name="sgd", lr=0.2, warmup_steps=1, schedule="cosine")
    optimizer = build_optimizer([param], config, group="student")
    scheduler = build_scheduler(optimizer, config, total_steps=5)
    seen = []
    for _ in range(5):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [0.2 * lr_factor(s, total_steps=5, warmup_steps=1, schedule="cosine") for s in range(5)]
    assert seen == pytest.approx(expected)
    assert seen[1] == pytest.approx(0.2) and seen[3] == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * 0.5)))


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("sgd", torch.optim.SGD, {"momentum": 0.9, "weight_decay": 5e-4}),
        ("adamw", torch.optim.AdamW, {"eps": 1e-4, "weight_decay": 0.01}),
        ("adam", torch.optim.Adam, {"eps": 1e-4, "weight_decay": 0.01}),
    ],
)
def test_optimizer_takes_its_settings_from_the_config(name, kind, expected):
    config = OptimizerConfig(name=name, lr=0.3, momentum=0.9, weight_decay=expected["weight_decay"], eps=1e-4)
    optimizer = build_optimizer([nn.Parameter(torch.zeros(1))], config, group="adapters")
    assert isinstance(optimizer, kind)
    settings = optimizer.param_groups[0]
    assert settings["lr"] == 0.3
    assert all(settings[key] == value for key, value in expected.items())


def test_nesterov_without_momentum_names_the_group():
    config = OptimizerConfig(name="sgd", momentum=0.0, nesterov=True)
    with pytest.raises(ValueError, match=r"train.optimizers.teacher: nesterov"):
        build_optimizer([nn.Parameter(torch.zeros(1))], config, group="teacher")
