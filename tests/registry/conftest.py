"""Tiny ONNX classifiers and bare registered versions for the registry tests (the MLflow
``workspace`` fixture is in tests/conftest.py)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from onnx import TensorProto, helper, numpy_helper

from fourds.export.onnx import OnnxExport, classifier_metadata
from fourds.hashing import file_sha256
from fourds.inference import ImagePreprocessing
from fourds.lineage.record import LineageRecord


TINY_CLASSES = ["zero", "one", "two"]
"""The classes of the ``make_onnx`` classifiers (and of test_models.py's student weights)."""
TINY_PREPROCESSING = ImagePreprocessing(image_size=4, resize_size=4, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


@pytest.fixture
def make_onnx(tmp_path):
    """Writes real, runnable ONNX classifiers (images (B, 3, 4, 4) -> logits (B, 3)) without a torch export,
    with the metadata an exported student carries (``TINY_PREPROCESSING``, ``TINY_CLASSES``)."""
    return lambda name="student.onnx", seed=0: _write_tiny_onnx(tmp_path / name, seed)


@pytest.fixture
def bare_version():
    """Creates registry versions that carry only metric and class-list tags: enough for aliases, promotion, status."""
    return _bare_student_version


def _write_tiny_onnx(path, seed: int) -> OnnxExport:
    weights = np.random.default_rng(seed).standard_normal((48, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["images"], ["flat"]), helper.make_node("Gemm", ["flat", "weights"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        initializer=[numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    helper.set_model_props(model, classifier_metadata(TINY_PREPROCESSING, TINY_CLASSES))
    onnx.save_model(model, str(path))
    return OnnxExport(
        path=path,
        sha256=file_sha256(path),
        size_bytes=path.stat().st_size,
        opset=18,
        input_name="images",
        output_name="logits",
        image_size=4,
        num_classes=3,
    )


def _bare_student_version(
    model_name: str, metrics: dict[str, float], source: str = "file:///nowhere", num_classes: int | None = 10
) -> str:
    """A version tagged with ``metrics`` and a class list of ``num_classes`` names (None: no class list)."""
    client = MlflowClient()
    try:
        client.get_registered_model(model_name)
    except MlflowException:
        client.create_registered_model(model_name, tags={"fourds.kind": "student"})
    tags = LineageRecord(metrics=metrics).to_tags()
    if num_classes is not None:
        tags["fourds.classes"] = json.dumps([f"class{index}" for index in range(num_classes)])
    return str(client.create_model_version(model_name, source=source, tags=tags).version)
