"""Export the student to ONNX, check it against PyTorch with onnxruntime, time it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import mlflow
from zenml import step

from fourds.config import RunConfig
from fourds.export.onnx import OnnxExportError, check_parity, classifier_metadata, measure_onnx_latency
from fourds.export.onnx import export_onnx as export_to_onnx
from fourds.inference import preprocessing_for
from fourds.models import load_classifier
from steps.artifacts import ExportedOnnx, RunContext, TrainedModels
from steps.tracking.mlflow_run import resumed_mlflow_run


@step(enable_cache=False)
def export_onnx(config: RunConfig, run: RunContext, trained: TrainedModels) -> Annotated[ExportedOnnx, "onnx_model"]:
    """A parity failure stops the run here, so a student that ONNX does not reproduce is never registered."""
    # torch's exporter and onnxscript log every graph rewrite at INFO, which ZenML's root level shows.
    for noisy in ("torch.onnx", "onnxscript", "onnx_ir"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    student, info = load_classifier(trained.weights["student"])
    image_size = config.data.image_size
    # The preprocessing and class names travel inside the file (metadata_props): it stands on its own.
    metadata = classifier_metadata(preprocessing_for(config.data), info.classes, arch=info.arch, domain=run.domain)
    exported = export_to_onnx(student, Path(run.run_dir) / "student.onnx", image_size=image_size,
                              opset=config.export.opset, arch=info.arch, metadata=metadata)
    parity = check_parity(student, exported.path, batch_size=config.export.parity_batch_size, image_size=image_size)
    # Batch 1 always: the promotion's latency budget is on batch-1 latency.
    latency_ms = {
        str(batch): measure_onnx_latency(exported.path, batch_size=batch, image_size=image_size,
                                         repeats=config.export.latency_repeats)["median_ms"]
        for batch in sorted({1, *config.export.latency_batch_sizes})
    }
    with resumed_mlflow_run(run, config):
        mlflow.log_metrics({
            "onnx/parity_max_abs_diff": parity,
            "onnx/size_mb": exported.size_mb,
            **{f"onnx/latency_ms_batch{batch}": ms for batch, ms in latency_ms.items()},
        })
        if parity > config.promotion.max_parity_abs_diff:
            raise OnnxExportError(
                f"{exported.path}: ONNX logits differ from PyTorch by up to {parity:.3g}, more than "
                f"promotion.max_parity_abs_diff={config.promotion.max_parity_abs_diff:g}"
            )
    return ExportedOnnx(
        path=str(exported.path),
        sha256=exported.sha256,
        size_bytes=exported.size_bytes,
        opset=exported.opset,
        parity_max_abs_diff=parity,
        latency_ms=latency_ms,
    )
