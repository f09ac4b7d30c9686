"""A run's evaluation: the only piece that reads the test split, once per network.

Every network the run trained (the student, the 4Ds adapted teacher, a fine-tuned
teacher, the guard's runner-up), the source teacher as it came, and the domain's current
champion (re-scored on this run's test split: promotion compares these figures).
Selection happened on validation before this.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from torch import nn

from fourds.config import RunConfig
from fourds.devices import select_device
from fourds.evaluation.metrics import evaluate_models
from fourds.evaluation.plots import plot_confusion_matrix, plot_reliability_diagram
from fourds.method.adapted_teacher import load_adapted_teacher
from fourds.models import load_classifier
from fourds.registry import score_champion, student_model_name
from fourds.runs.context import run_folder, tracked
from fourds.runs.data import run_splits
from fourds.runs.records import EvaluationSummary, IngestedDomain, RunContext, TeacherWeights, TrainedWeights
from fourds.runs.student import SOURCE_TEACHER
from fourds.training.recipes import ADAPTED_TEACHER, STUDENT

CHAMPION_ACCURACY = "test/champion/accuracy"


def evaluate_for_run(
    config: RunConfig,
    run: RunContext,
    ingested: IngestedDomain,
    trained: TrainedWeights,
    teacher: TeacherWeights | None = None,
) -> EvaluationSummary:
    """Score every network on the test split; log metrics and plots (confusion, reliability) to the run."""
    run_dir = run_folder(run)
    paths = trained.local_weights(run_dir)
    if teacher is not None:
        paths[SOURCE_TEACHER] = teacher.local_weights(run_dir / SOURCE_TEACHER)
    models = {role: _load_network(role, path) for role, path in paths.items()}
    test_set = run_splits(run, ingested, config, trained.classes).test
    device = select_device(config.train.device)
    evaluations = evaluate_models(models, test_set, trained.classes, batch_size=config.data.eval_batch_size,
                                  device=device)
    metrics = {}
    report_dir = run_dir / "evaluation"
    report_files = []
    for role, evaluation in evaluations.items():
        metrics |= evaluation.to_metrics(prefix=f"test/{role}/")
        report_files.append(str(plot_confusion_matrix(
            evaluation, report_dir / f"{role}_confusion.png", title=f"{role} on {ingested.name} (test)")))
        report_files.append(str(plot_reliability_diagram(
            evaluation, report_dir / f"{role}_reliability.png", title=f"{role} (ECE {evaluation.ece:.3f})")))

    with tracked(run, config):
        champion = None
        if STUDENT in paths:
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
    return EvaluationSummary(
        metrics=metrics,
        per_class_accuracy={role: dict(evaluation.per_class_accuracy) for role, evaluation in evaluations.items()},
        report_files=report_files,
        champion=champion,
    )


def _load_network(role: str, path: Path) -> nn.Module:
    return load_adapted_teacher(path)[0] if role == ADAPTED_TEACHER else load_classifier(path)[0]
