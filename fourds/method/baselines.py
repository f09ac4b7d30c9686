"""The baselines 4Ds is compared with, behind the same Method interface."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fourds.config import RunConfig
from fourds.method.base import Method, StepOutput, with_unlabelled
from fourds.method.frozen_teacher import BatchNormMode, check_bn_mode, set_frozen_teacher_mode
from fourds.method.losses import kd_loss


class Supervised(Method):
    """Cross-entropy on labels: student from scratch, teacher training, two-stage fine-tuning.

    ``group`` names the optimiser (``TrainConfig.optimizers`` key) that trains ``model``:
    ``"student"`` for a student, ``"teacher"`` when training or fine-tuning a teacher.
    """

    name: ClassVar[str] = "supervised"

    def __init__(self, model: nn.Module, group: str = "student"):
        super().__init__()
        self.model = model
        self.group = group

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {self.group: [p for p in self.model.parameters() if p.requires_grad]}

    def training_step(
        self, images: torch.Tensor, labels: torch.Tensor, unlabelled: torch.Tensor | None = None
    ) -> StepOutput:
        # No label-free term: unlabelled images (never loaded, see uses_unlabelled) would teach nothing.
        logits = self.model(images)
        ce = F.cross_entropy(logits, labels)
        return StepOutput(losses={f"{self.group}/ce": ce}, objectives={self.group: ce}, logits=logits.detach())

    def evaluated_models(self) -> dict[str, nn.Module]:
        return {"student": self.model}

    @classmethod
    def from_config(cls, config: RunConfig, *, teacher: nn.Module | None, student: nn.Module) -> Supervised:
        return cls(student, group="student")


class KnowledgeDistillation(Method):
    """Vanilla KD from a frozen teacher: CE(z_S, y) + kd_weight * T^2 KL(p_T || p_S).

    The teacher gets no gradients. ``teacher_bn`` is the same option as 4Ds's: ``"frozen"``
    keeps the teacher in eval mode with its source BatchNorm statistics, ``"adapt"`` lets
    its BatchNorm follow the target batches while the method trains (an AdaBN teacher),
    so 4Ds and KD can be compared with the same teacher behaviour. With unlabelled images
    the KD term (and the teacher's batch statistics) covers labelled and unlabelled rows,
    the cross-entropy the labelled rows only.
    """

    name: ClassVar[str] = "kd"
    uses_unlabelled: ClassVar[bool] = True

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        temperature: float = 4.0,
        kd_weight: float = 1.0,
        teacher_bn: BatchNormMode = "adapt",
    ):
        super().__init__()
        check_bn_mode(teacher_bn)
        self.teacher = teacher.requires_grad_(False)
        self.student = student
        self.temperature = temperature
        self.kd_weight = kd_weight
        self.teacher_bn = teacher_bn
        self.train(self.training)

    def train(self, mode: bool = True) -> KnowledgeDistillation:
        super().train(mode)
        set_frozen_teacher_mode(self.teacher, mode, self.teacher_bn)
        return self

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"student": [p for p in self.student.parameters() if p.requires_grad]}

    def training_step(
        self, images: torch.Tensor, labels: torch.Tensor, unlabelled: torch.Tensor | None = None
    ) -> StepOutput:
        inputs = with_unlabelled(images, unlabelled)
        labelled = labels.shape[0]
        with torch.no_grad():
            teacher_logits = self.teacher(inputs)
        student_logits = self.student(inputs)
        ce = F.cross_entropy(student_logits[:labelled], labels)
        kd = kd_loss(student_logits, teacher_logits, self.temperature)
        return StepOutput(
            losses={"student/ce": ce, "student/kd": kd},
            objectives={"student": ce + self.kd_weight * kd},
            logits=student_logits[:labelled].detach(),
        )

    def evaluated_models(self) -> dict[str, nn.Module]:
        return {"student": self.student}

    @classmethod
    def from_config(cls, config: RunConfig, *, teacher: nn.Module | None, student: nn.Module) -> KnowledgeDistillation:
        return cls(
            teacher,
            student,
            temperature=config.fourds.kd_temperature,
            kd_weight=config.fourds.kd_weight,
            teacher_bn=config.fourds.teacher_bn,
        )
