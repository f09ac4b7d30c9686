"""4Ds: one-stage distillation from a frozen source teacher to a student on the target domain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from fourds.config import FourDsConfig, RunConfig
from fourds.method.adapted_teacher import AdaptedTeacher, LogitsOnly
from fourds.method.base import Method, StepOutput, with_unlabelled
from fourds.method.fusion import FusionActivation
from fourds.method.losses import information_maximisation, kd_loss
from fourds.models.taps import StageTaps, probe_stage_shapes
from fourds.models.zoo import default_stage_names


class FourDs(Method):
    """Fourier adapters in the frozen teacher and fusion-activation into the student, trained together.

    Two objectives per batch, each for its own optimiser (see METHOD.md):

    * ``adapters``: CE(z_T, y) + adapter_kd_weight * T^2 KL(p_S || p_T) + adapter_im_weight * IM(p_T),
      the student detached: the adapted teacher learns the target labels and moves toward the
      student (``adapter_kd_weight`` defaults to ``kd_weight``); IM is the label-free information
      maximisation on every row (0 in the reference).
    * ``student``: CE(z_S, y) + kd_weight * T^2 KL(p_T || p_S) + fusion_weight * L_FA,
      the teacher's logits and phases detached.

    Neither objective reaches the other group's parameters, so the trainer may
    back-propagate them in any order. Given unlabelled target images, both networks see
    labelled and unlabelled rows in one pass: the CE terms use the labelled rows, the KD
    terms, L_FA and the teacher's BatchNorm statistics all rows. L_FA covers the stages
    whose maps are at least ``fusion_min_side`` wide (``fusion_stages``).
    """

    name: ClassVar[str] = "4ds"
    uses_unlabelled: ClassVar[bool] = True

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
        self.adapted_teacher = self.build_adapted_teacher(teacher, config, teacher_stages, input_shape)
        student_shapes = probe_stage_shapes(student, self.student_stages, input_shape)
        self.fusion_stages = _fusion_stages(
            self.adapted_teacher.stage_shapes, student_shapes, config.fusion_min_side, input_shape
        )
        self.fusion = FusionActivation(
            [self.adapted_teacher.stage_channels[index] for index in self.fusion_stages],
            [student_shapes[index][0] for index in self.fusion_stages],
            gate_reduction=config.gate_reduction,
            floor=config.spectrum_floor,
            distance=config.fusion_distance,
        )
        self.fusion.to(next(student.parameters()).device)

    @staticmethod
    def build_adapted_teacher(
        teacher: nn.Module, config: FourDsConfig, teacher_stages: Sequence[str], input_shape: Sequence[int]
    ) -> AdaptedTeacher:
        """The teacher with its adapters as ``config`` sets them (also what a study counts parameters of)."""
        return AdaptedTeacher(
            teacher,
            teacher_stages,
            input_shape=input_shape,
            reduction=config.adapter_reduction,
            temperature=config.amplitude_temperature,
            floor=config.spectrum_floor,
            bn_mode=config.teacher_bn,
            initial_mix=config.adapter_initial_mix,
            adapted_stages=_adapted_stage_names(config.adapter_stages, teacher_stages),
            bn_affine=config.adapter_bn_affine,
            tuned_modules=config.adapter_tuned_modules,
            tune_early=config.adapter_tune_early,
            residual=config.adapter_residual,
        )

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "adapters": self.adapted_teacher.trainable_parameters(),
            "student": [p for p in self.student.parameters() if p.requires_grad] + list(self.fusion.parameters()),
        }

    def training_step(
        self, images: torch.Tensor, labels: torch.Tensor, unlabelled: torch.Tensor | None = None
    ) -> StepOutput:
        """Cross-entropy terms on the labelled rows; KD, fusion and BatchNorm statistics on all rows."""
        tau, kd_weight = self.config.kd_temperature, self.config.kd_weight
        adapter_kd_weight = kd_weight if self.config.adapter_kd_weight is None else self.config.adapter_kd_weight
        inputs = with_unlabelled(images, unlabelled)
        labelled = labels.shape[0]
        with StageTaps(self.student, self.student_stages) as taps:
            student_logits = self.student(inputs)
            student_features = taps.outputs()
        teacher_logits, teacher_phases = self.adapted_teacher(inputs)

        adapters_ce = F.cross_entropy(teacher_logits[:labelled], labels)
        adapters_kd = kd_loss(teacher_logits, student_logits.detach(), tau)
        adapters_im = information_maximisation(teacher_logits)

        student_ce = F.cross_entropy(student_logits[:labelled], labels)
        student_kd = kd_loss(student_logits, teacher_logits.detach(), tau)
        fusion = self.fusion(
            self.fusion.student_phases([student_features[index] for index in self.fusion_stages]),
            [teacher_phases[index].detach() for index in self.fusion_stages],
        )

        extras = {"fusion/gate_mean": self.fusion.gate_mean}
        for stage, (adapted_weight, _) in self.adapted_teacher.mix_weights.items():
            extras[f"adapters/a0/{stage}"] = adapted_weight
        return StepOutput(
            losses={
                "adapters/ce": adapters_ce,
                "adapters/kd": adapters_kd,
                "adapters/im": adapters_im,
                "student/ce": student_ce,
                "student/kd": student_kd,
                "student/fusion": fusion,
            },
            objectives={
                "adapters": adapters_ce + adapter_kd_weight * adapters_kd + self.config.adapter_im_weight * adapters_im,
                "student": student_ce + kd_weight * student_kd + self.config.fusion_weight * fusion,
            },
            logits=student_logits[:labelled].detach(),
            extras=extras,
        )

    def evaluated_models(self) -> dict[str, nn.Module]:
        return {"student": self.student, "adapted_teacher": LogitsOnly(self.adapted_teacher)}

    @classmethod
    def from_config(cls, config: RunConfig, *, teacher: nn.Module | None, student: nn.Module) -> FourDs:
        """Stages from ``config.model`` (the architectures' defaults when unset), probed at the configured image size."""
        model = config.model
        return cls(
            teacher,
            student,
            config.fourds,
            teacher_stages=model.teacher_stages or default_stage_names(model.teacher_arch),
            student_stages=model.student_stages or default_stage_names(model.student_arch),
            input_shape=(3, config.data.image_size, config.data.image_size),
        )


def _adapted_stage_names(chosen: Sequence[int] | None, teacher_stages: Sequence[str]) -> list[str] | None:
    """``FourDsConfig.adapter_stages`` (positions among the stages, 0 = the first) as stage names."""
    if chosen is None:
        return None
    outside = [index for index in chosen if not 0 <= index < len(teacher_stages)]
    if outside:
        raise ValueError(
            f"fourds.adapter_stages {list(chosen)} names positions outside the teacher's {len(teacher_stages)} "
            f"stages {list(teacher_stages)} (0 = {teacher_stages[0]})"
        )
    return [teacher_stages[index] for index in chosen]


def _fusion_stages(
    teacher_shapes: Sequence[torch.Size],
    student_shapes: Sequence[torch.Size],
    min_side: int,
    input_shape: Sequence[int],
) -> list[int]:
    """Indices of the stages whose teacher and student maps are at least ``min_side`` on both sides.

    A map of 2x2 or less has a real spectrum (every bin is its own mirror image), so its
    phases are 0 or pi and carry no gradient; pooling other stages down to such a size
    throws their spatial phase structure away too. With no stage left, 4Ds still keeps the
    last one (the term is then inert) and warns.
    """
    kept = [
        index
        for index, (teacher, student) in enumerate(zip(teacher_shapes, student_shapes))
        if min(teacher[-2], teacher[-1], student[-2], student[-1]) >= min_side
    ]
    if kept:
        return kept
    warnings.warn(
        f"4Ds fusion-activation is inert at input size {tuple(input_shape)}: no stage keeps maps of at least "
        f"{min_side}x{min_side} (FourDsConfig.fusion_min_side), and phases of smaller maps carry no gradient; "
        "use larger images or ModelConfig.stem='small_input' / 'no_maxpool'",
        stacklevel=3,
    )
    return [len(teacher_shapes) - 1]
