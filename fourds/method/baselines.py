"""The baselines 4Ds is compared with, behind the same Method interface."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fourds.method.base import Method, StepOutput
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

    def training_step(self, images: torch.Tensor, labels: torch.Tensor) -> StepOutput:
        logits = self.model(images)
        ce = F.cross_entropy(logits, labels)
        return StepOutput(losses={f"{self.group}/ce": ce}, objectives={self.group: ce}, logits=logits.detach())

    def evaluated_models(self) -> dict[str, nn.Module]:
        return {"student": self.model}


class KnowledgeDistillation(Method):
    """Vanilla KD from a frozen teacher: CE(z_S, y) + kd_weight * T^2 KL(p_T || p_S).

    The teacher is frozen (no gradients) and stays in eval mode whatever mode the
    method is put in, so its BatchNorm statistics never drift.
    """

    name: ClassVar[str] = "kd"

    def __init__(self, teacher: nn.Module, student: nn.Module, temperature: float = 4.0, kd_weight: float = 1.0):
        super().__init__()
        self.teacher = teacher.requires_grad_(False)
        self.student = student
        self.temperature = temperature
        self.kd_weight = kd_weight
        self.teacher.eval()

    def train(self, mode: bool = True) -> KnowledgeDistillation:
        super().train(mode)
        self.teacher.eval()
        return self

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"student": [p for p in self.student.parameters() if p.requires_grad]}

    def training_step(self, images: torch.Tensor, labels: torch.Tensor) -> StepOutput:
        with torch.no_grad():
            teacher_logits = self.teacher(images)
        student_logits = self.student(images)
        ce = F.cross_entropy(student_logits, labels)
        kd = kd_loss(student_logits, teacher_logits, self.temperature)
        return StepOutput(
            losses={"student/ce": ce, "student/kd": kd},
            objectives={"student": ce + self.kd_weight * kd},
            logits=student_logits.detach(),
        )

    def evaluated_models(self) -> dict[str, nn.Module]:
        return {"student": self.student}
