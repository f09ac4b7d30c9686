"""The student as an ONNX file: exported with a dynamic batch, checked and timed on onnxruntime.

Export uses torch's default (dynamo, ``torch.export``-based) exporter with a symbolic
batch dimension. The example batch has 2 images because ``torch.export`` specialises a
dimension of size 1 to a constant; parity is then checked on another batch size, so a
batch dimension baked in by mistake cannot pass unnoticed.

Every function works on a CPU copy of the model in eval mode: the caller's model keeps
its device, train/eval mode and weights (BatchNorm statistics included).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from fourds.config import ExportConfig
from fourds.hashing import file_sha256
from fourds.inference.onnx_classifier import CLASSES_KEY, PREPROCESSING_KEY, ImagePreprocessing

INPUT_NAME = "images"
OUTPUT_NAME = "logits"
EXPORT_EXAMPLE_BATCH = 2
MIN_OPSET = 17

_log = logging.getLogger(__name__)


class OnnxExportError(RuntimeError):
    """The model could not be exported to ONNX, or the exported file is not usable."""


@dataclass(frozen=True)
class OnnxExport:
    """An exported ONNX file and the facts recorded about it."""

    path: Path
    sha256: str
    size_bytes: int
    opset: int
    """The opset the file declares (may exceed the requested one; see :func:`export_onnx`)."""
    input_name: str
    output_name: str
    image_size: int
    num_classes: int

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 2**20


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    image_size: int,
    opset: int = 18,
    channels: int = 3,
    arch: str | None = None,
    metadata: dict[str, str] | None = None,
) -> OnnxExport:
    """Export ``model`` (images ``(B, channels, image_size, image_size)`` -> logits) to ``path``.

    The batch dimension is dynamic. torch's exporter implements opset 18 and newer; a
    lower request is converted when onnxscript can, otherwise the file stays at 18 and
    ``OnnxExport.opset`` says so. ``arch`` only names the model in error messages.
    ``metadata`` is written into the file's ``metadata_props`` (what a user of the file
    needs besides the graph: preprocessing and class names, see
    :func:`fourds.export.onnx.classifier_metadata`).
    """
    if opset < MIN_OPSET:
        raise ValueError(f"ONNX opset must be >= {MIN_OPSET}, got {opset}")
    if image_size < 1 or channels < 1:
        raise ValueError(f"image_size and channels must be positive, got {image_size} and {channels}")
    name = arch or type(model).__name__
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)

    reference = _cpu_eval_copy(model)
    example = torch.randn(EXPORT_EXAMPLE_BATCH, channels, image_size, image_size, generator=_generator(0))
    batch = torch.export.Dim("batch", min=1)
    try:
        torch.onnx.export(
            reference,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=({0: batch},),
            external_data=False,
            verbose=False,
        )
    except Exception as exc:
        path.unlink(missing_ok=True)
        raise OnnxExportError(
            f"could not export {name} to ONNX (opset {opset}, dynamic batch, input "
            f"{channels}x{image_size}x{image_size}): {_summary(exc)}"
        ) from exc
    if not path.is_file():
        raise OnnxExportError(f"exporting {name} to ONNX reported success but wrote no file at {path}")

    proto = onnx.load(str(path))
    if metadata:
        onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, **metadata})
        onnx.save_model(proto, str(path))
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise OnnxExportError(f"the ONNX file exported from {name} is invalid: {exc}") from exc
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    if not batch_dim.dim_param:
        raise OnnxExportError(
            f"the ONNX file exported from {name} has a fixed batch size ({batch_dim.dim_value}); expected a dynamic one"
        )
    declared_opset = next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))
    if declared_opset != opset:
        _log.warning("ONNX export of %s asked for opset %d; the file declares opset %d", name, opset, declared_opset)
    with torch.no_grad():
        num_classes = reference(example).shape[1]
    return OnnxExport(
        path=path,
        sha256=file_sha256(path),
        size_bytes=path.stat().st_size,
        opset=declared_opset,
        input_name=proto.graph.input[0].name,
        output_name=proto.graph.output[0].name,
        image_size=image_size,
        num_classes=int(num_classes),
    )


def classifier_metadata(preprocessing: ImagePreprocessing, classes: list[str], **extra: str) -> dict[str, str]:
    """The ``metadata_props`` that make an exported classifier usable on its own.

    Its preprocessing (input side, resize, centre crop, RGB channel order, pixel scale,
    normalisation) and its class names in output order, under the keys
    :class:`~fourds.inference.onnx_classifier.OnnxImageClassifier` reads; ``extra``
    (e.g. ``arch``, ``domain``) goes in as ``fourds.<name>``.
    """
    return {
        PREPROCESSING_KEY: preprocessing.to_json(),
        CLASSES_KEY: json.dumps(list(classes)),
        **{f"fourds.{name}": str(value) for name, value in extra.items()},
    }


def check_parity(
    model: nn.Module,
    onnx_path: str | Path,
    *,
    batch_size: int,
    image_size: int,
    channels: int = 3,
    seed: int = 0,
) -> float:
    """Largest absolute difference between PyTorch (CPU, eval) and onnxruntime (CPU) logits.

    Inputs are random with a fixed seed. ``batch_size`` must differ from the export
    example's batch, so the check also proves the batch dimension is really dynamic.
    """
    if batch_size == EXPORT_EXAMPLE_BATCH:
        raise ValueError(
            f"parity batch size {batch_size} equals the export example's batch; pick another one "
            "(ExportConfig.parity_batch_size) so that a fixed batch dimension cannot pass"
        )
    if batch_size < 1:
        raise ValueError(f"parity batch size must be >= 1, got {batch_size}")
    images = torch.randn(batch_size, channels, image_size, image_size, generator=_generator(seed))
    with torch.no_grad():
        expected = _cpu_eval_copy(model)(images).numpy()
    session = _session(onnx_path)
    actual = session.run(None, {session.get_inputs()[0].name: images.numpy()})[0]
    if actual.shape != expected.shape:
        raise OnnxExportError(
            f"{onnx_path}: onnxruntime returned logits of shape {actual.shape}, PyTorch {expected.shape}"
        )
    return float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64))))


def measure_onnx_latency(
    onnx_path: str | Path,
    *,
    batch_size: int,
    image_size: int,
    repeats: int = 20,
    warmup: int = 3,
    channels: int = 3,
    threads: int | None = None,
) -> dict[str, float]:
    """Wall-clock time of one onnxruntime CPU inference: ``{batch_size, median_ms, p90_ms, mean_ms, repeats}``.

    ``threads`` sets onnxruntime's intra-op threads (None: its default, all cores).
    """
    _check_timing_arguments(batch_size, repeats, warmup)
    session = _session(onnx_path, threads=threads)
    feed = {
        session.get_inputs()[0].name: np.random.default_rng(0)
        .standard_normal((batch_size, channels, image_size, image_size))
        .astype(np.float32)
    }
    return _timed(lambda: session.run(None, feed), batch_size=batch_size, repeats=repeats, warmup=warmup)


def measure_torch_latency(
    model: nn.Module,
    *,
    batch_size: int,
    image_size: int,
    repeats: int = 20,
    warmup: int = 3,
    channels: int = 3,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Wall-clock time of one PyTorch eval-mode forward, in the same shape as :func:`measure_onnx_latency`."""
    _check_timing_arguments(batch_size, repeats, warmup)
    device = torch.device(device)
    runner = copy.deepcopy(model).to(device).eval()
    images = torch.randn(batch_size, channels, image_size, image_size, generator=_generator(0)).to(device)

    def forward() -> None:
        with torch.inference_mode():
            runner(images)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return _timed(forward, batch_size=batch_size, repeats=repeats, warmup=warmup)


def _cpu_eval_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).cpu().eval()


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _session(onnx_path: str | Path, *, threads: int | None = None) -> onnxruntime.InferenceSession:
    if not Path(onnx_path).is_file():
        raise FileNotFoundError(f"ONNX file not found: {onnx_path}")
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def _check_timing_arguments(batch_size: int, repeats: int, warmup: int) -> None:
    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise ValueError(
            f"latency needs batch_size >= 1, repeats >= 1 and warmup >= 0; got {batch_size}, {repeats}, {warmup}"
        )


def _timed(run, *, batch_size: int, repeats: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        run()
    times_ms = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times_ms.append((time.perf_counter() - start) * 1000.0)
    return {
        "batch_size": float(batch_size),
        "median_ms": float(np.median(times_ms)),
        "p90_ms": float(np.percentile(times_ms, 90)),
        "mean_ms": float(np.mean(times_ms)),
        "repeats": float(repeats),
    }


def _summary(exc: BaseException) -> str:
    """The root cause's type and first line: torch's exporter wraps it in pages of advice."""
    cause = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    first_line = next((line.strip() for line in str(cause).splitlines() if line.strip()), "")
    return f"{type(cause).__name__}: {first_line}" if first_line else type(cause).__name__


@dataclass(frozen=True)
class CheckedOnnx:
    """An export, its parity against PyTorch and its onnxruntime latency: what deploying needs to know."""

    export: OnnxExport
    parity_max_abs_diff: float
    latency: dict[int, dict[str, float]]
    """By batch size, :func:`measure_onnx_latency`'s summary."""

    @property
    def latency_ms(self) -> dict[str, float]:
        """Median milliseconds by batch size (string keys: JSON- and MLflow-friendly)."""
        return {str(batch): summary["median_ms"] for batch, summary in self.latency.items()}

    def raise_for_parity(self, max_abs_diff: float) -> None:
        """Refuse an export whose logits differ from PyTorch's by more than ``max_abs_diff``."""
        if self.parity_max_abs_diff > max_abs_diff:
            raise OnnxExportError(
                f"{self.export.path}: ONNX logits differ from PyTorch by up to {self.parity_max_abs_diff:.3g}, "
                f"more than promotion.max_parity_abs_diff={max_abs_diff:g}"
            )


def export_and_check(
    model: nn.Module,
    path: str | Path,
    *,
    image_size: int,
    config: ExportConfig,
    arch: str | None = None,
    metadata: dict[str, str] | None = None,
    threads: int | None = None,
) -> CheckedOnnx:
    """Export ``model``, measure its parity with PyTorch and its latency (batch 1 always, plus
    ``config.latency_batch_sizes``; ``threads`` as in :func:`measure_onnx_latency`).

    The parity is measured, not judged: call :meth:`CheckedOnnx.raise_for_parity` with the
    budget, after recording the figures, so that a refused export still leaves them behind.
    """
    exported = export_onnx(model, path, image_size=image_size, opset=config.opset, arch=arch, metadata=metadata)
    parity = check_parity(model, exported.path, batch_size=config.parity_batch_size, image_size=image_size)
    # Batch 1 always: the promotion's latency budget is on batch-1 latency.
    latency = {
        batch: measure_onnx_latency(exported.path, batch_size=batch, image_size=image_size,
                                    repeats=config.latency_repeats, threads=threads)
        for batch in sorted({1, *config.latency_batch_sizes})
    }
    return CheckedOnnx(exported, parity, latency)
