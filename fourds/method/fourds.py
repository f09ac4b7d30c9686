"""4Ds: one-stage distillation from a frozen source teacher to a student on the target domain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from fourds.config import FourDsConfig
from fourds.method.adapted_teacher import AdaptedTeacher, LogitsOnly
from fourds.method.base import Method, StepOutput
from fourds.method.fusion import FusionActivation
from fourds.method.losses import kd_loss
from fourds.models.taps import StageTaps, probe_stage_shapes


class FourDs(Method):
    """Fourier adapters in the frozen teacher and fusion-activation into the student, trained together.

    Two objectives per batch, each for its own optimiser (see METHOD.md):

    * ``adapters``: CE(z_T, y) + kd_weight * T^2 KL(p_S || p_T), the student detached:
      the adapted teacher learns the target labels and moves toward the student.
    * ``student``: CE(z_S, y) + kd_weight * T^2 KL(p_T || p_S) + fusion_weight * L_FA,
      the teacher's logits and phases detached.

    Neither objective reaches the other group's parameters, so the trainer may
    back-propagate them in any order.
    """

    name: ClassVar[str] = "4ds"

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        config: FourDsConfig,
        *,
        teacher_stages: Sequence[str],
        student_stages: Sequence[str],
        input_shape: Sequence[int] = (3, 224, 224),
    ):
        super().__init__()
        if len(teacher_stages) != len(student_stages):
            raise ValueError(
                f"4Ds pairs teacher and student stages one to one: got teacher stages {list(teacher_stages)} "
                f"and student stages {list(student_stages)} (ModelConfig.teacher_stages/student_stages)"
            )
        self.config = config
        self.student = student
        self.student_stages = list(student_stages)
        self.adapted_teacher = AdaptedTeacher(
            teacher,
            teacher_stages,
            input_shape=input_shape,
            reduction=config.adapter_reduction,
            temperature=config.amplitude_temperature,
            floor=config.spectrum_floor,
            bn_mode=config.teacher_bn,
        )
        student_shapes = probe_stage_shapes(student, self.student_stages, input_shape)
        _warn_if_fusion_is_degenerate(self.adapted_teacher.stage_shapes[-1], student_shapes[-1], input_shape)
        self.fusion = FusionActivation(
            self.adapted_teacher.stage_channels,
            [shape[0] for shape in student_shapes],
            gate_reduction=config.gate_reduction,
            floor=config.spectrum_floor,
        )
        self.fusion.to(next(student.parameters()).device)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "adapters": list(self.adapted_teacher.adapters.parameters()),
            "student": [p for p in self.student.parameters() if p.requires_grad] + list(self.fusion.parameters()),
        }

    def training_step(self, images: torch.Tensor, labels: torch.Tensor) -> StepOutput:
        tau, kd_weight = self.config.kd_temperature, self.config.kd_weight
        with StageTaps(self.student, self.student_stages) as taps:
            student_logits = self.student(images)
            student_features = taps.outputs()
        teacher_logits, teacher_phases = self.adapted_teacher(images)

        adapters_ce = F.cross_entropy(teacher_logits, labels)
        adapters_kd = kd_loss(teacher_logits, student_logits.detach(), tau)

        student_ce = F.cross_entropy(student_logits, labels)
        student_kd = kd_loss(student_logits, teacher_logits.detach(), tau)
        fusion = self.fusion(
            self.fusion.student_phases(student_features), [phase.detach() for phase in teacher_phases]
        )

        extras = {"fusion/gate_mean": self.fusion.gate_mean}
        for stage, (adapted_weight, _) in self.adapted_teacher.mix_weights.items():
            extras[f"adapters/a0/{stage}"] = adapted_weight
        return StepOutput(
            losses={
                "adapters/ce": adapters_ce,
                "adapters/kd": adapters_kd,
                "student/ce": student_ce,
                "student/kd": student_kd,
                "student/fusion": fusion,
            },
            objectives={
                "adapters": adapters_ce + kd_weight * adapters_kd,
                "student": student_ce + kd_weight * student_kd + self.config.fusion_weight * fusion,
            },
            logits=student_logits.detach(),
            extras=extras,
        )

    def evaluated_models(self) -> dict[str, nn.Module]:
        return {"student": self.student, "adapted_teacher": LogitsOnly(self.adapted_teacher)}


def _warn_if_fusion_is_degenerate(
    teacher_last: torch.Size, student_last: torch.Size, input_shape: Sequence[int]
) -> None:
    """Fusion-activation pools phases to the last stage's size; at 1x1 it cannot teach anything.

    The phase spectrum of a real map is odd (P(-k) = -P(k)), so its mean over all
    frequencies is constant: pooled to 1x1, L_FA has no gradient for the student.
    """
    height = min(teacher_last[-2], student_last[-2])
    width = min(teacher_last[-1], student_last[-1])
    if height * width == 1:
        warnings.warn(
            f"4Ds fusion-activation is inert at input size {tuple(input_shape)}: the last stage maps are "
            f"1x1, and phase maps pooled to 1x1 carry no gradient; use larger images or ModelConfig.stem="
            "'small_input' / 'no_maxpool' so the last stage keeps at least 2x2 (better 4x4 or more)",
            stacklevel=3,
        )
