"""A registered teacher as an image classifier: its safetensors weights and recorded preprocessing, no pickle.

Every teacher version in the registry is an MLflow ``python_function`` model whose loader
is this module (``loader_module: fourds.inference.torch_classifier``), so
``mlflow.pyfunc.load_model("models:/fourds-teacher@<domain>")`` works wherever fourds is
installed. Its data folder holds :data:`WEIGHTS_FILE` (weights with arch, classes and stem
in the safetensors header) and :data:`PREPROCESSING_FILE`; it takes the same uint8 image
batch as a student's pyfunc (:class:`~fourds.inference.onnx_classifier.PyfuncImageClassifier`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fourds.inference.onnx_classifier import ImagePreprocessing, PyfuncImageClassifier, softmax
from fourds.models.weights import load_classifier

WEIGHTS_FILE = "teacher.safetensors"
PREPROCESSING_FILE = "preprocessing.json"


class TorchImageClassifier:
    """A classifier weights file (:func:`fourds.models.load_classifier`) with its preprocessing, on the CPU."""

    def __init__(self, weights_path: str | Path, preprocessing: ImagePreprocessing):
        self.model, info = load_classifier(weights_path)
        self.model.eval()
        self.classes = list(info.classes)
        self.preprocessing = preprocessing

    def logits(self, images: Sequence[Image.Image | np.ndarray] | np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model(torch.from_numpy(self.preprocessing.batch(images))).float().numpy()

    def probabilities(self, images: Sequence[Image.Image | np.ndarray] | np.ndarray) -> np.ndarray:
        return softmax(self.logits(images))


def _load_pyfunc(data_path: str) -> PyfuncImageClassifier:
    """MLflow's hook: ``data_path`` is the model's data folder."""
    folder = Path(data_path)
    preprocessing = ImagePreprocessing.from_json((folder / PREPROCESSING_FILE).read_text())
    return PyfuncImageClassifier(TorchImageClassifier(folder / WEIGHTS_FILE, preprocessing))
