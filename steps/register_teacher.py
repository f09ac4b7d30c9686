"""Register a freshly trained teacher with its lineage (``fourds.runs.teacher.register_teacher_for_run``)."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.runs.records import (
    EvaluationSummary,
    IngestedDomain,
    RegisteredVersion,
    RunContext,
    TrainedWeights,
    ValidationSummary,
)
from fourds.runs.teacher import register_teacher_for_run


@step(enable_cache=False)
def register_teacher(
    config: RunConfig, run: RunContext, ingested: IngestedDomain, validation: ValidationSummary,
    trained: TrainedWeights, evaluation: EvaluationSummary,
) -> Annotated[RegisteredVersion, "registered_teacher"]:
    return register_teacher_for_run(config, run, ingested, validation, trained, evaluation)
