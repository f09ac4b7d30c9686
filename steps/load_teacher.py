"""The frozen teacher into the run folder (``fourds.runs.teacher.resolve_teacher_for_run``)."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.runs.records import RunContext, TeacherWeights
from fourds.runs.teacher import resolve_teacher_for_run


@step(enable_cache=False)  # an alias such as "champion" moves between runs: always resolve it again
def load_teacher(
    config: RunConfig, run: RunContext, teacher_ref: str | None = None
) -> Annotated[TeacherWeights, "teacher"]:
    return resolve_teacher_for_run(config, run, teacher_ref)
