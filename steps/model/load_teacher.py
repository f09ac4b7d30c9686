"""Resolve the frozen teacher (registry reference) into a weights file of the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.models import save_classifier
from fourds.registry import load_teacher as load_registered_teacher
from steps.artifacts import IngestedDomain, RunContext, TeacherWeights
from steps.tracking.mlflow_run import resumed_mlflow_run


@step(enable_cache=False)  # "champion" moves between runs: always resolve it again
def load_teacher(
    config: RunConfig, run: RunContext, ingested: IngestedDomain, teacher_ref: str | None = None
) -> Annotated[TeacherWeights, "teacher"]:
    reference = teacher_ref or config.tracking.teacher_model_name
    with resumed_mlflow_run(run, config):
        loaded = load_registered_teacher(reference, classes=ingested.classes)
    weights_path = Path(run.run_dir) / "teacher.safetensors"
    save_classifier(
        loaded.model,
        weights_path,
        arch=loaded.arch,
        classes=loaded.classes,
        stem=loaded.stem,
        metadata={"reference": reference},
    )
    return TeacherWeights(
        weights_path=str(weights_path),
        arch=loaded.arch,
        stem=loaded.stem,
        classes=list(loaded.classes),
        reference=reference,
        registered_name=loaded.model_name,
        registered_version=loaded.version,
        source_data_md5=loaded.data_md5,
    )
