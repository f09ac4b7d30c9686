"""Fusion-activation: align the student's stage phases with the adapted teacher's, where the teacher says it matters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from fourds.method.fourier import phase_map


PhaseDistance = Literal["circular", "angle"]


class FusionActivation(nn.Module):
    """L_FA = mean(a^2 * d(Phi_S, Phi_T)) with a = sigmoid(W2 ReLU(W1 GAP(gate input of Phi_T))).

    Phi is every stage's phase map pooled to the last stage's spatial size and
    concatenated along channels. The gate sees only the teacher's phases (it decides
    which channels carry transferable content); it has no bias and squeezes by
    ``gate_reduction``.

    ``distance`` decides how phases are compared:

    * ``"angle"`` (the reference): phases are pooled as plain numbers and
      d = (Phi_S - Phi_T)^2, i.e. MSE(a * Phi_S, a * Phi_T). It ignores wrap-around
      (pi and -pi are one angle, yet cost 4 pi^2), and the gate's input, the spatial
      mean of a phase map, is ~0 for every real map (its spectrum's phase is odd), so
      the gate sees nothing.
    * ``"circular"``: phases become unit phasors (cos, sin), pooled as vectors (a
      circular mean), and d = |u_S - u_T|^2 / 2, which is 1 - cos(Phi_S - Phi_T) on
      unpooled maps: 0 for equal angles, largest for opposite ones, blind to wrap-around.
      The gate's input is the spatial mean of cos(Phi_T), which is not ~0 by symmetry.

    When a student stage is narrower or wider than the teacher's, a learned 1x1 conv
    maps the student's *feature map* to the teacher's width before its phase is taken:
    a phase is an angle, so mixing phases across channels would average wrapped angles,
    whereas the phase of a projected feature is the phase of a real feature map (and,
    the FFT being linear, of the complex mix of the channels' spectra). Matching widths
    get no projection.
    """

    def __init__(
        self,
        teacher_channels: Sequence[int],
        student_channels: Sequence[int],
        gate_reduction: int = 16,
        floor: float = 1e-5,
        distance: PhaseDistance = "circular",
    ):
        super().__init__()
        if distance not in ("circular", "angle"):
            raise ValueError(f"fusion distance must be 'circular' or 'angle', got {distance!r}")
        self.distance = distance
        if len(teacher_channels) != len(student_channels):
            raise ValueError(
                f"fusion-activation pairs teacher and student stages one to one, got {len(teacher_channels)} "
                f"teacher stages and {len(student_channels)} student stages (ModelConfig.teacher_stages/student_stages)"
            )
        self.projections = nn.ModuleList(
            nn.Identity() if s == t else nn.Conv2d(s, t, kernel_size=1, bias=False)
            for s, t in zip(student_channels, teacher_channels)
        )
        total = sum(teacher_channels)
        hidden = max(1, total // gate_reduction)
        self.gate = nn.Sequential(
            nn.Linear(total, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, total, bias=False),
            nn.Sigmoid(),
        )
        self.floor = floor
        self._last_gate: torch.Tensor | None = None

    @property
    def gate_mean(self) -> float | None:
        """Mean gate value of the last forward pass; worth logging, since nothing stops it collapsing to 0."""
        return None if self._last_gate is None else self._last_gate.mean().item()

    def student_phases(self, student_features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Phase maps of the student's stage features, projected to the teacher's widths first."""
        return [phase_map(project(f), self.floor) for project, f in zip(self.projections, student_features)]

    def forward(self, student_phases: Sequence[torch.Tensor], teacher_phases: Sequence[torch.Tensor]) -> torch.Tensor:
        """The fusion-activation loss. Pass the teacher's phases detached to keep the adapters out of it."""
        size = _common_size(student_phases[-1], teacher_phases[-1])
        if self.distance == "angle":
            student = _pool_and_concatenate(student_phases, size)
            teacher = _pool_and_concatenate(teacher_phases, size)
            _check_aligned(student, teacher)
            gate = self._gate(teacher)
            return F.mse_loss(gate * student, gate * teacher)
        student_cos = _pool_and_concatenate([torch.cos(p) for p in student_phases], size)
        student_sin = _pool_and_concatenate([torch.sin(p) for p in student_phases], size)
        teacher_cos = _pool_and_concatenate([torch.cos(p) for p in teacher_phases], size)
        teacher_sin = _pool_and_concatenate([torch.sin(p) for p in teacher_phases], size)
        _check_aligned(student_cos, teacher_cos)
        gate = self._gate(teacher_cos)
        half_squared_chord = ((student_cos - teacher_cos) ** 2 + (student_sin - teacher_sin) ** 2) / 2
        return (gate**2 * half_squared_chord).mean()

    def _gate(self, teacher_map: torch.Tensor) -> torch.Tensor:
        gate = self.gate(teacher_map.mean(dim=(2, 3)))[:, :, None, None]
        self._last_gate = gate.detach()
        return gate


def _common_size(student_last: torch.Tensor, teacher_last: torch.Tensor) -> tuple[int, int]:
    """The teacher's last-stage size, or the smaller one when the student's last stage is coarser."""
    return (
        min(student_last.shape[-2], teacher_last.shape[-2]),
        min(student_last.shape[-1], teacher_last.shape[-1]),
    )


def _check_aligned(student: torch.Tensor, teacher: torch.Tensor) -> None:
    if student.shape != teacher.shape:
        raise ValueError(
            f"student phases {tuple(student.shape)} do not line up with teacher phases {tuple(teacher.shape)}"
        )


def _pool_and_concatenate(phases: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    return torch.cat([F.adaptive_avg_pool2d(phase, size) for phase in phases], dim=1)
