"""Distil the frozen teacher into the student with the configured method (4Ds by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.models import load_classifier, save_classifier
from fourds.registry.tracking import MlflowMetricsCallback
from fourds.training.recipes import distill
from steps.artifacts import IngestedDomain, RunContext, TeacherWeights, TrainedModels, ValidationSummary
from steps.data.datasets import domain_splits
from steps.tracking.mlflow_run import resumed_mlflow_run


@step(enable_cache=False)
def distill_student(
    config: RunConfig,
    run: RunContext,
    ingested: IngestedDomain,
    teacher: TeacherWeights,
    validation: ValidationSummary,
) -> Annotated[TrainedModels, "trained_models"]:
    """``validation`` is an input so that distillation can only follow a passed suite."""
    teacher_model, _ = load_classifier(teacher.weights_path, arch=teacher.arch, classes=teacher.classes,
                                       stem=teacher.stem)
    splits = domain_splits(ingested, config, teacher.classes)
    run_dir = Path(run.run_dir)
    with resumed_mlflow_run(run, config):
        result = distill(
            config,
            teacher_model,
            splits.train,
            splits.val,
            num_classes=len(teacher.classes),
            callbacks=[MlflowMetricsCallback()],
            checkpoint_dir=run_dir / "checkpoints" / "distill",
        )
    weights = {"student": run_dir / "student.safetensors"}
    save_classifier(result.student, weights["student"], arch=config.model.student_arch, classes=teacher.classes,
                    stem=config.model.stem, metadata={"method": config.method, "domain": ingested.name})
    return TrainedModels(
        weights={role: str(path) for role, path in weights.items()},
        arch={"student": config.model.student_arch},
        classes=teacher.classes,
        stem=config.model.stem,
        method=config.method,
        wall_seconds=result.wall_seconds,
        images_per_second=result.images_per_second,
        final_metrics=dict(result.metrics),
    )
