"""Distil the frozen teacher into the student with the configured method (4Ds by default)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import mlflow
from zenml import step

from fourds.config import RunConfig
from fourds.devices import select_device
from fourds.evaluation.metrics import evaluate_classifier
from fourds.models import load_classifier, save_classifier
from fourds.registry.tracking import MlflowMetricsCallback
from fourds.training.recipes import distill
from steps.artifacts import IngestedDomain, RunContext, TeacherWeights, TrainedModels, ValidationSummary
from steps.data.datasets import domain_splits
from steps.tracking.mlflow_run import resumed_mlflow_run

logger = logging.getLogger(__name__)


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
            checkpoint_dir=run_dir / "checkpoints",
            unlabelled_set=splits.unlabelled,
        )
        mlflow.log_params({"data.unlabelled_images": ingested.unlabelled_images,
                           "data.unlabelled_images_used": result.unlabelled_images})
        guard = result.guard.summary() if result.guard is not None else "off"
        if result.guard is not None:
            mlflow.log_metrics(result.guard.metrics())
        mlflow.set_tags({"fourds.guard": guard, "fourds.student_method": result.student_method})
    logger.info("scratch guard: %s", guard)
    files = {"student": (result.student, config.model.student_arch, result.student_method)}
    if result.distilled_student is not None:
        # The guard kept the scratch student; the distilled one is still scored on test, for the record.
        files["distilled_student"] = (result.distilled_student, config.model.student_arch, config.method)
    if result.scratch_student is not None:  # the guard kept the distilled student; the scratch one is scored too
        files["scratch_student"] = (result.scratch_student, config.model.student_arch, "student_scratch")
    if result.finetuned_teacher is not None:
        files["finetuned_teacher"] = (result.finetuned_teacher, config.model.teacher_arch, config.method)
    for role, (model, arch, method) in files.items():
        save_classifier(model, run_dir / f"{role}.safetensors", arch=arch, classes=teacher.classes,
                        stem=config.model.stem, metadata={"method": method, "domain": ingested.name})

    # The 4Ds adapted teacher exists only here (a teacher with adapters, not a classifier
    # file), so its one test evaluation happens here too.
    extra_test_metrics = {}
    if result.adapted_teacher is not None:
        extra_test_metrics = evaluate_classifier(
            result.adapted_teacher, splits.test, teacher.classes, batch_size=config.data.eval_batch_size,
            device=select_device(config.train.device),
        ).to_metrics(prefix="test/adapted_teacher/")
    return TrainedModels(
        weights={role: str(run_dir / f"{role}.safetensors") for role in files},
        arch={role: arch for role, (_, arch, _) in files.items()},
        classes=teacher.classes,
        stem=config.model.stem,
        method=config.method,
        student_method=result.student_method,
        guard=guard,
        wall_seconds=result.wall_seconds,
        images_per_second=result.images_per_second,
        unlabelled_images_used=result.unlabelled_images,
        final_metrics=dict(result.metrics),
        extra_test_metrics=extra_test_metrics,
    )
