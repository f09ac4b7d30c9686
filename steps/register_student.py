"""Register the student with its lineage as tags, alias ``challenger`` (``fourds.runs.student``)."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.runs.records import (
    EvaluationSummary,
    ExportedOnnx,
    IngestedDomain,
    RegisteredVersion,
    RunContext,
    TeacherWeights,
    TrainedWeights,
    ValidationSummary,
)
from fourds.runs.student import register_student_for_run


@step(enable_cache=False)
def register_student(
    config: RunConfig, run: RunContext, ingested: IngestedDomain, teacher: TeacherWeights,
    validation: ValidationSummary, trained: TrainedWeights, evaluation: EvaluationSummary, onnx_model: ExportedOnnx,
) -> Annotated[RegisteredVersion, "registered_version"]:
    return register_student_for_run(config, run, ingested, teacher, validation, trained, evaluation, onnx_model)
