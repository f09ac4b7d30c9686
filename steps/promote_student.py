"""Apply the promotion policy (``fourds.runs.student.promote_for_run``): champion moves only past every gate."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.runs.records import EvaluationSummary, PromotionOutcome, RegisteredVersion, RunContext
from fourds.runs.student import promote_for_run


@step(enable_cache=False)
def promote_student(
    config: RunConfig, run: RunContext, registered: RegisteredVersion, evaluation: EvaluationSummary
) -> Annotated[PromotionOutcome, "promotion"]:
    return promote_for_run(config, run, registered, evaluation)
