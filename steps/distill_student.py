"""Distil the frozen teacher into the student (``fourds.runs.student.distill_for_run``)."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.runs.records import IngestedDomain, RunContext, TeacherWeights, TrainedWeights, ValidationSummary
from fourds.runs.student import distill_for_run


@step(enable_cache=False)
def distill_student(
    config: RunConfig, run: RunContext, ingested: IngestedDomain, teacher: TeacherWeights,
    validation: ValidationSummary,
) -> Annotated[TrainedWeights, "trained_models"]:
    """``validation`` is an input so that distillation can only follow a passed suite."""
    return distill_for_run(config, run, ingested, teacher)
