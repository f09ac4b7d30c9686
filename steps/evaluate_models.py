"""Score every network, the source teacher and the champion on the test split (``fourds.runs.evaluation``)."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.runs.evaluation import evaluate_for_run
from fourds.runs.records import EvaluationSummary, IngestedDomain, RunContext, TeacherWeights, TrainedWeights


@step(enable_cache=False)
def evaluate_models(
    config: RunConfig, run: RunContext, ingested: IngestedDomain, trained: TrainedWeights,
    teacher: TeacherWeights | None = None,
) -> Annotated[EvaluationSummary, "evaluation"]:
    return evaluate_for_run(config, run, ingested, trained, teacher)
