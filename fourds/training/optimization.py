"""Optimisers and learning-rate schedules built from :class:`~fourds.config.OptimizerConfig`.

Schedules are stepped once per training iteration (as in the 4Ds reference), so the
same config means the same learning-rate curve whatever the dataset size.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch import nn

from fourds.config import OptimizerConfig


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the base learning rate for 0-based training step ``step``.

    Warm-up: step ``s < warmup_steps`` uses ``(s + 1) / (warmup_steps + 1)``, a linear ramp
    from 0 that never wastes a step at lr 0. After warm-up, ``"cosine"`` decays from 1 to
    0 at ``step == total_steps`` (so the last step still learns a little); ``"constant"``
    stays at 1.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        decay_steps = total_steps - warmup_steps
        if decay_steps <= 0:
            return 0.0
        progress = min(1.0, (step - warmup_steps) / decay_steps)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; expected 'cosine' or 'constant'")


def build_optimizer(params: Sequence[nn.Parameter], config: OptimizerConfig, *, group: str) -> torch.optim.Optimizer:
    """The optimiser ``config`` names, over one parameter group."""
    if config.name == "sgd":
        if config.nesterov and config.momentum == 0:
            raise ValueError(f"train.optimizers.{group}: nesterov=true needs momentum > 0")
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
    if config.name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, eps=config.eps, weight_decay=config.weight_decay)
    if config.name == "adam":
        return torch.optim.Adam(params, lr=config.lr, eps=config.eps, weight_decay=config.weight_decay)
    raise ValueError(f"train.optimizers.{group}: unknown optimiser {config.name!r}")


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: OptimizerConfig, *, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration schedule of :func:`lr_factor` (warm-up, then cosine or constant)."""
    factor = functools.partial(
        lr_factor, total_steps=total_steps, warmup_steps=config.warmup_steps, schedule=config.schedule
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
