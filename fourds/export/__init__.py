"""The student as a deployable ONNX file: export with a dynamic batch, onnxruntime parity, latency."""

from fourds.export.onnx import (
    CheckedOnnx,
    OnnxExport,
    OnnxExportError,
    check_parity,
    export_and_check,
    export_onnx,
    measure_onnx_latency,
    measure_torch_latency,
)

__all__ = [
    "CheckedOnnx",
    "OnnxExport",
    "OnnxExportError",
    "check_parity",
    "export_and_check",
    "export_onnx",
    "measure_onnx_latency",
    "measure_torch_latency",
]
