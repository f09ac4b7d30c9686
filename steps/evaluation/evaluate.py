"""Score every trained model, and the source teacher, on the domain's test split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import mlflow
from zenml import step

from fourds.config import RunConfig
from fourds.devices import select_device
from fourds.evaluation.metrics import evaluate_classifier
from fourds.evaluation.plots import plot_confusion_matrix, plot_reliability_diagram
from fourds.models import load_classifier
from steps.artifacts import EvaluationSummary, IngestedDomain, RunContext, TeacherWeights, TrainedModels
from steps.data.datasets import domain_splits
from steps.tracking.mlflow_run import resumed_mlflow_run
from steps.tracking.zenml_model import log_model_metadata

SOURCE_TEACHER = "source_teacher"


@step(enable_cache=False)
def evaluate_models(
    config: RunConfig,
    run: RunContext,
    ingested: IngestedDomain,
    trained: TrainedModels,
    teacher: TeacherWeights | None = None,
) -> Annotated[EvaluationSummary, "evaluation"]:
    """The test split is used here only, once per model (selection happened on validation)."""
    weights = dict(trained.weights)
    if teacher is not None:
        weights[SOURCE_TEACHER] = teacher.weights_path
    test_set = domain_splits(ingested, config, trained.classes).test
    report_dir = Path(run.run_dir) / "evaluation"
    device = select_device(config.train.device)

    metrics: dict[str, float] = dict(trained.extra_test_metrics)
    per_class: dict[str, dict[str, float]] = {}
    report_files: list[str] = []
    for role, path in weights.items():
        model, info = load_classifier(path)
        evaluation = evaluate_classifier(
            model, test_set, info.classes, batch_size=config.data.eval_batch_size, device=device
        )
        metrics.update(evaluation.to_metrics(prefix=f"test/{role}/"))
        per_class[role] = dict(evaluation.per_class_accuracy)
        report_files.append(str(plot_confusion_matrix(evaluation, report_dir / f"{role}_confusion.png",
                                                      title=f"{role} on {ingested.name} (test)")))
        report_files.append(str(plot_reliability_diagram(evaluation, report_dir / f"{role}_reliability.png",
                                                         title=f"{role} calibration (ECE {evaluation.ece:.3f})")))
    with resumed_mlflow_run(run, config):
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(report_dir), artifact_path="evaluation")
    log_model_metadata({"test_metrics": metrics})
    return EvaluationSummary(metrics=metrics, per_class_accuracy=per_class, report_files=report_files)
