"""The student as a deployable ONNX file: export with a dynamic batch, onnxruntime parity, latency, sha256."""

from fourds.export.onnx import (
    OnnxExport,
    OnnxExportError,
    check_parity,
    export_onnx,
    measure_onnx_latency,
    measure_torch_latency,
    sha256_file,
)

__all__ = [
    "OnnxExport",
    "OnnxExportError",
    "check_parity",
    "export_onnx",
    "measure_onnx_latency",
    "measure_torch_latency",
    "sha256_file",
]
