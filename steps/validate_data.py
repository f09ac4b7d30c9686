"""Great Expectations on the ingested domain (``fourds.runs.data.validate_for_run``); a failed suite stops the run."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.runs.data import validate_for_run
from fourds.runs.records import IngestedDomain, RunContext, TeacherWeights, ValidationSummary


@step(enable_cache=False)
def validate_data(
    config: RunConfig, run: RunContext, ingested: IngestedDomain, teacher: TeacherWeights | None = None
) -> Annotated[ValidationSummary, "validation"]:
    return validate_for_run(config, run, ingested, teacher)
