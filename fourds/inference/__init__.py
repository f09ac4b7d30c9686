"""Using a trained model on its own: its recorded preprocessing, ONNX and MLflow pyfunc classifiers, ``fourds predict``.

* :mod:`fourds.inference.onnx_classifier`: the self-contained ONNX classifier that also
  travels inside every registered student as its MLflow pyfunc loader (no fourds import);
* :mod:`fourds.inference.torch_classifier`: the pyfunc loader of registered teachers
  (safetensors weights, needs fourds installed);
* :mod:`fourds.inference.classify`: the preprocessing of a :class:`~fourds.config.DataConfig`,
  and classifying image files (``fourds predict``).
"""

from fourds.inference.classify import (
    ImagePrediction,
    classify_images,
    collect_images,
    eval_transform,
    preprocessing_for,
    render_predictions,
)
from fourds.inference.onnx_classifier import (
    CLASSES_KEY,
    PREPROCESSING_KEY,
    ImagePreprocessing,
    ModelInputError,
    OnnxImageClassifier,
)

__all__ = [
    "CLASSES_KEY",
    "PREPROCESSING_KEY",
    "ImagePrediction",
    "ImagePreprocessing",
    "ModelInputError",
    "OnnxImageClassifier",
    "classify_images",
    "collect_images",
    "eval_transform",
    "preprocessing_for",
    "render_predictions",
]
