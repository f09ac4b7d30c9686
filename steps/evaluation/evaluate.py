"""Score every trained model, the source teacher and the domain's current champion on this run's test split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import mlflow
from zenml import step

from fourds.config import RunConfig
from fourds.devices import select_device
from fourds.evaluation.metrics import evaluate_models as evaluate_each
from fourds.evaluation.plots import plot_confusion_matrix, plot_reliability_diagram
from fourds.models import load_classifier
from fourds.registry import score_champion, student_model_name
from steps.artifacts import EvaluationSummary, IngestedDomain, RunContext, TeacherWeights, TrainedModels
from steps.data.datasets import domain_splits
from steps.tracking.mlflow_run import resumed_mlflow_run
from steps.tracking.zenml_model import log_model_metadata

SOURCE_TEACHER = "source_teacher"
CHAMPION_ACCURACY = "test/champion/accuracy"


@step(enable_cache=False)
def evaluate_models(
    config: RunConfig,
    run: RunContext,
    ingested: IngestedDomain,
    trained: TrainedModels,
    teacher: TeacherWeights | None = None,
) -> Annotated[EvaluationSummary, "evaluation"]:
    """The test split is used here only, once per model (selection happened on validation)."""
    paths = dict(trained.weights)
    if teacher is not None:
        paths[SOURCE_TEACHER] = teacher.weights_path
    models = {role: load_classifier(path)[0] for role, path in paths.items()}
    test_set = domain_splits(ingested, config, trained.classes).test
    device = select_device(config.train.device)
    evaluations = evaluate_each(models, test_set, trained.classes, batch_size=config.data.eval_batch_size,
                                device=device)
    metrics = dict(trained.extra_test_metrics)
    report_dir = Path(run.run_dir) / "evaluation"
    report_files = []
    for role, evaluation in evaluations.items():
        metrics |= evaluation.to_metrics(prefix=f"test/{role}/")
        report_files.append(str(plot_confusion_matrix(
            evaluation, report_dir / f"{role}_confusion.png", title=f"{role} on {ingested.name} (test)")))
        report_files.append(str(plot_reliability_diagram(
            evaluation, report_dir / f"{role}_reliability.png", title=f"{role} (ECE {evaluation.ece:.3f})")))

    with resumed_mlflow_run(run, config):
        # The domain's current champion, re-scored on this run's test split: promotion compares these figures.
        champion = None
        if "student" in paths:
            champion = score_champion(student_model_name(run.domain, config.tracking), test_set, trained.classes,
                                      batch_size=config.data.eval_batch_size, device=device)
        if champion is not None:
            mlflow.set_tag("fourds.champion_before", champion.version)
            if champion.accuracy is not None:
                metrics[CHAMPION_ACCURACY] = champion.accuracy
            if champion.recorded_accuracy is not None:
                mlflow.log_metric("champion/recorded_test_accuracy", champion.recorded_accuracy)
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(report_dir), artifact_path="evaluation")
    log_model_metadata({"test_metrics": metrics})
    return EvaluationSummary(
        metrics=metrics,
        per_class_accuracy={role: dict(evaluation.per_class_accuracy) for role, evaluation in evaluations.items()},
        report_files=report_files,
        champion=champion,
    )
