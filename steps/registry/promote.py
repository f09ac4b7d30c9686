"""Apply the promotion policy: ``champion`` moves only when the new version passes every gate."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.registry import promote_if_better
from steps.artifacts import EvaluationSummary, PromotionOutcome, RegisteredVersion, RunContext
from steps.tracking.mlflow_run import resumed_mlflow_run
from steps.tracking.zenml_model import log_model_metadata


@step(enable_cache=False)
def promote_student(
    config: RunConfig, run: RunContext, registered: RegisteredVersion, evaluation: EvaluationSummary
) -> Annotated[PromotionOutcome, "promotion"]:
    """``evaluation`` carries the champion re-scored on this run's test split: the figure the champion gate compares."""
    with resumed_mlflow_run(run, config):
        decision = promote_if_better(registered.model_name, registered.version, config.promotion,
                                     champion_score=evaluation.champion, echo=False)
    log_model_metadata({"promoted": decision.promoted, "promotion_reasons": "\n".join(decision.reasons)})
    return PromotionOutcome(
        model_name=registered.model_name,
        version=registered.version,
        promoted=decision.promoted,
        reasons=decision.reasons,
        champion_version=registered.version if decision.promoted else decision.champion_version_before,
    )
