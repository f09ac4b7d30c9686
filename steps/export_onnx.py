"""The student as ONNX, checked against PyTorch and timed (``fourds.runs.student.export_for_run``)."""

from __future__ import annotations

from typing import Annotated

from zenml import step

from fourds.config import RunConfig
from fourds.runs.records import ExportedOnnx, RunContext, TrainedWeights
from fourds.runs.student import export_for_run


@step(enable_cache=False)
def export_onnx(config: RunConfig, run: RunContext, trained: TrainedWeights) -> Annotated[ExportedOnnx, "onnx_model"]:
    return export_for_run(config, run, trained)
