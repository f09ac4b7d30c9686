"""Train a teacher on a source domain (the library's recipe; this step only feeds it and saves it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.models import save_classifier
from fourds.registry.tracking import MlflowMetricsCallback
from fourds.training.recipes import train_teacher
from steps.artifacts import IngestedDomain, RunContext, TrainedModels, ValidationSummary
from steps.data.datasets import domain_splits
from steps.tracking.mlflow_run import resumed_mlflow_run


@step(enable_cache=False)
def train_teacher_model(
    config: RunConfig, run: RunContext, ingested: IngestedDomain, validation: ValidationSummary
) -> Annotated[TrainedModels, "trained_teacher"]:
    """``validation`` is an input so that training can only follow a passed suite."""
    # A teacher learns from labels only: the domain's unlabelled images (splits.unlabelled) are not used.
    splits = domain_splits(ingested, config, ingested.classes, label_budget=False)
    run_dir = Path(run.run_dir)
    with resumed_mlflow_run(run, config):
        trained = train_teacher(
            config,
            splits.train,
            splits.val,
            num_classes=len(ingested.classes),
            callbacks=[MlflowMetricsCallback(prefix="teacher/")],
            checkpoint_dir=run_dir / "checkpoints" / "teacher",
        )
    weights_path = run_dir / "teacher.safetensors"
    save_classifier(trained.model, weights_path, arch=config.model.teacher_arch, classes=ingested.classes,
                    stem=config.model.stem, metadata={"domain": ingested.name, "data_md5": ingested.domain_md5})
    return TrainedModels(
        weights={"teacher": str(weights_path)},
        arch={"teacher": config.model.teacher_arch},
        classes=ingested.classes,
        stem=config.model.stem,
        method="teacher",
        wall_seconds=trained.result.wall_seconds,
        images_per_second=trained.result.images_per_second,
        final_metrics=dict(trained.result.metrics),
    )
