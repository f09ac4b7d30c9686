"""4Ds and its baselines behind one interface (``fourds.method.base.Method``).

``two_stage`` is not here: it is a recipe (``fourds.training``) of ``Supervised``
fine-tuning of the teacher followed by ``KnowledgeDistillation`` from it.
"""

from __future__ import annotations

import torch
from torch import nn

from fourds.config import RunConfig
from fourds.method.adapted_teacher import AdaptedTeacher, LogitsOnly
from fourds.method.base import Method, StepOutput
from fourds.method.baselines import KnowledgeDistillation, Supervised
from fourds.method.fourds import FourDs
from fourds.method.fourier import FourierAdapter, phase_map
from fourds.method.fusion import FusionActivation
from fourds.method.losses import kd_loss, softened_kl
from fourds.models.zoo import build_classifier, default_stage_names

METHODS: dict[str, type[Method]] = {
    "4ds": FourDs,
    "kd": KnowledgeDistillation,
    "student_scratch": Supervised,
}

__all__ = [
    "METHODS",
    "AdaptedTeacher",
    "FourDs",
    "FourierAdapter",
    "FusionActivation",
    "KnowledgeDistillation",
    "LogitsOnly",
    "Method",
    "StepOutput",
    "Supervised",
    "build_method",
    "kd_loss",
    "phase_map",
    "softened_kl",
]


def build_method(
    name: str,
    config: RunConfig,
    *,
    teacher: nn.Module | None = None,
    student: nn.Module | None = None,
    num_classes: int | None = None,
) -> Method:
    """The method called ``name``, configured from ``config``.

    ``teacher`` is required by ``4ds`` and ``kd``. Without ``student``, a fresh
    ``config.model.student_arch`` is built with ``num_classes`` outputs (by default as
    many as the teacher has).
    """
    if name == "two_stage":
        raise ValueError(
            "two_stage is a recipe, not a method: fine-tune the teacher with Supervised(teacher, group='teacher'), "
            "then build 'kd' with the fine-tuned teacher (fourds.training runs both)"
        )
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}: expected one of {', '.join(METHODS)} (or the recipe two_stage)")
    needs_teacher = name in ("4ds", "kd")
    if needs_teacher and teacher is None:
        raise ValueError(f"method {name!r} distils from a teacher: pass teacher= (the frozen source-domain classifier)")
    if student is None:
        student = _fresh_student(config, num_classes if num_classes is not None else _output_count(teacher, config))

    if name == "student_scratch":
        return Supervised(student, group="student")
    if name == "kd":
        return KnowledgeDistillation(
            teacher,
            student,
            temperature=config.fourds.kd_temperature,
            kd_weight=config.fourds.kd_weight,
            teacher_bn=config.fourds.teacher_bn,
        )
    model = config.model
    return FourDs(
        teacher,
        student,
        config.fourds,
        teacher_stages=model.teacher_stages or default_stage_names(model.teacher_arch),
        student_stages=model.student_stages or default_stage_names(model.student_arch),
        input_shape=(3, config.data.image_size, config.data.image_size),
    )


def _fresh_student(config: RunConfig, num_classes: int) -> nn.Module:
    return build_classifier(
        config.model.student_arch, num_classes, pretrained=config.model.pretrained, stem=config.model.stem
    )


def _output_count(teacher: nn.Module | None, config: RunConfig) -> int:
    if teacher is None:
        raise ValueError("to build a fresh student, pass num_classes= (or a teacher to copy the class count from)")
    modes = {module: module.training for module in teacher.modules()}
    side = config.data.image_size
    try:
        teacher.eval()  # a probe must not move BatchNorm statistics
        with torch.no_grad():
            logits = teacher(torch.zeros(1, 3, side, side, device=next(teacher.parameters()).device))
    finally:
        for module, training in modes.items():
            module.training = training
    return logits.shape[1]
