"""Resolve the frozen teacher (registry reference or weights file) into a weights file of the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.models import save_classifier
from fourds.registry import load_teacher as load_frozen_teacher
from steps.artifacts import RunContext, TeacherWeights
from steps.tracking.mlflow_run import resumed_mlflow_run


@step(enable_cache=False)  # an alias such as "champion" moves between runs: always resolve it again
def load_teacher(
    config: RunConfig, run: RunContext, teacher_ref: str | None = None
) -> Annotated[TeacherWeights, "teacher"]:
    """No class check here: validation checks every label against the teacher's classes and names the files."""
    reference = teacher_ref or config.tracking.teacher_model_name  # a bare name: its latest version
    with resumed_mlflow_run(run, config):
        loaded = load_frozen_teacher(reference, tracking=config.tracking)
    weights_path = save_classifier(
        loaded.model,
        Path(run.run_dir) / "teacher.safetensors",
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
        # An unregistered weights file is identified by its path and content hash.
        registered_name=loaded.model_name or reference,
        registered_version=loaded.version or f"sha256:{loaded.weights_sha256}",
        source_data_md5=loaded.data_md5,
    )
