"""Train a teacher on a source domain (``fourds.runs.teacher.train_teacher_for_run``)."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.runs.records import IngestedDomain, RunContext, TrainedWeights, ValidationSummary
from fourds.runs.teacher import train_teacher_for_run


@step(enable_cache=False)
def train_teacher_model(
    config: RunConfig, run: RunContext, ingested: IngestedDomain, validation: ValidationSummary
) -> Annotated[TrainedWeights, "trained_teacher"]:
    """``validation`` is an input so that training can only follow a passed suite."""
    return train_teacher_for_run(config, run, ingested)
