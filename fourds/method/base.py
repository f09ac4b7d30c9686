"""The interface every training method implements (4Ds, its baselines, teacher training).

A method is an ``nn.Module`` that owns the networks it trains and declares:

* ``parameter_groups()``: the learnable parameters, grouped by the optimiser that
  updates them (e.g. ``{"student": [...], "adapters": [...]}``). Group names are the
  keys of ``TrainConfig.optimizers``.
* ``training_step(images, labels, unlabelled=None)``: one forward pass returning named
  loss terms (for logging and non-finite checks) and one objective per parameter group.
  The trainer back-propagates each objective into its own group only, so a method with
  two optimisers (4Ds) needs no special case in the trainer. ``unlabelled`` is a batch of
  the target domain's unlabelled images: cross-entropy terms use the labelled batch only,
  label-free terms (KD, fusion-activation, BatchNorm statistics) both. Methods that
  have no label-free term set ``uses_unlabelled = False`` and the trainer never loads them.
* ``evaluated_models()``: the networks whose accuracy is reported, by role
  (``"student"`` always; ``"adapted_teacher"`` for 4Ds).
* ``from_config(config, teacher=, student=)``: the method as ``RunConfig`` configures it;
  what ``build_method`` calls for a name registered in :mod:`fourds.method.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from fourds.config import RunConfig


@dataclass
class StepOutput:
    """What one training step produced."""

    losses: dict[str, torch.Tensor]
    """Named scalar loss terms, e.g. ``{"student/ce": .., "student/kd": .., "adapters/ce": ..}``."""
    objectives: dict[str, torch.Tensor]
    """Per parameter group, the scalar that group's optimiser minimises."""
    logits: torch.Tensor
    """Logits of the main trained model (the student) on this batch, for running accuracy."""
    extras: dict[str, float] = field(default_factory=dict)
    """Diagnostics to log that are not losses (e.g. mean fusion gate, amplitude mix weights)."""


class Method(nn.Module):
    """Base class of a training method; see the module docstring for the contract."""

    name: ClassVar[str] = "method"
    uses_unlabelled: ClassVar[bool] = False
    """Whether ``training_step`` has label-free terms that unlabelled images feed."""

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        raise NotImplementedError

    def training_step(
        self, images: torch.Tensor, labels: torch.Tensor, unlabelled: torch.Tensor | None = None
    ) -> StepOutput:
        raise NotImplementedError

    def evaluated_models(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: RunConfig, *, teacher: nn.Module | None, student: nn.Module) -> Method:
        """The method as ``config`` sets it up; ``teacher`` is None for a method registered without one."""
        raise NotImplementedError(f"{cls.__name__} does not say how RunConfig builds it: define from_config")


def with_unlabelled(images: torch.Tensor, unlabelled: torch.Tensor | None) -> torch.Tensor:
    """The labelled images followed by the unlabelled ones, for one forward pass over both.

    One pass (not two) so that BatchNorm layers in train mode normalise with, and collect,
    statistics of the whole target batch. The labelled rows stay first: ``logits[:n]``.
    """
    return images if unlabelled is None or unlabelled.shape[0] == 0 else torch.cat([images, unlabelled])
