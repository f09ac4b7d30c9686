"""A registered student as a self-contained image classifier: ONNX file + its preprocessing + its class names.

This file is copied, as it is, into every registered student's MLflow model (as the
top-level module ``fourds_onnx_classifier``, the model's pyfunc loader), so it imports
nothing from fourds: only the standard library, numpy, Pillow, onnxruntime and (for the
MLflow interface) pandas. fourds itself uses it for ``fourds predict``.

What a model needs to be used on its own travels inside the ONNX file, as
``metadata_props`` (:data:`PREPROCESSING_KEY`, :data:`CLASSES_KEY`): the input side,
the resize and centre crop, the channel order, the pixel scale and the per-channel
normalisation. :class:`ImagePreprocessing` applies them exactly as fourds's evaluation
transform does (torchvision ``Resize`` of the shorter side with bilinear interpolation,
``CenterCrop``, ``ToTensor``, ``Normalize``), so a prediction here matches the one the
evaluation step scored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PREPROCESSING_KEY = "fourds.preprocessing"
"""ONNX ``metadata_props`` key of the input description (JSON of :class:`ImagePreprocessing`)."""
CLASSES_KEY = "fourds.classes"
"""ONNX ``metadata_props`` key of the class names, in output order (JSON list)."""
ONNX_FILE = "model.onnx"
"""The ONNX file's name inside a registered model's data folder."""


class ModelInputError(ValueError):
    """An image or batch cannot be fed to the classifier; the message says what was expected."""


@dataclass(frozen=True)
class ImagePreprocessing:
    """How an image becomes the network's input tensor.

    RGB image -> shorter side resized to ``resize_size`` (bilinear, antialiased) -> centre
    crop ``image_size`` x ``image_size`` -> pixel values / ``pixel_divisor`` (255) -> ``(x - mean) / std`` per
    channel -> ``(3, image_size, image_size)`` float32, channels first.
    """

    image_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: str = "RGB"
    layout: str = "NCHW"
    interpolation: str = "bilinear"
    pixel_divisor: float = 255.0

    def __post_init__(self) -> None:
        if self.image_size < 1 or self.resize_size < self.image_size:
            raise ModelInputError(
                f"preprocessing needs 1 <= image_size <= resize_size, got {self.image_size} and {self.resize_size}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ModelInputError(f"preprocessing needs 3 means and 3 positive stds, got {self.mean} and {self.std}")
        if (self.channel_order, self.layout, self.interpolation) != ("RGB", "NCHW", "bilinear"):
            raise ModelInputError(
                f"unsupported preprocessing {self.channel_order}/{self.layout}/{self.interpolation}: "
                "this classifier implements RGB, NCHW, bilinear"
            )

    def to_dict(self) -> dict:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def describe(self) -> str:
        """One line for people: what is done to an image."""
        return (f"resize the shorter side to {self.resize_size}, centre crop {self.image_size}x{self.image_size}, "
                f"normalise with mean {list(self.mean)} and std {list(self.std)}")

    @classmethod
    def from_dict(cls, values: dict) -> ImagePreprocessing:
        if not isinstance(values, dict):
            raise ModelInputError(f"not a valid preprocessing description: {values!r} (expected a JSON object)")
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        try:
            known["mean"] = tuple(float(v) for v in known["mean"])
            known["std"] = tuple(float(v) for v in known["std"])
            return cls(**known)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelInputError(f"not a valid preprocessing description: {values!r} ({exc})") from exc

    @classmethod
    def from_json(cls, text: str) -> ImagePreprocessing:
        """Raises :class:`ModelInputError` for text that is not a valid description (JSON or not)."""
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelInputError(f"not a valid preprocessing description: {text!r} (not JSON: {exc})") from exc
        return cls.from_dict(values)

    def __call__(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """One image (PIL, or an ``(H, W)`` / ``(H, W, 3)`` uint8 array) -> ``(3, S, S)`` float32."""
        image = _as_rgb_image(image)
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.resize_size, int(self.resize_size * long / short)
        new_size = (new_short, new_long) if width <= height else (new_long, new_short)
        if new_size != (width, height):
            image = image.resize(new_size, Image.BILINEAR)
        image = _centre_crop(image, self.image_size)
        pixels = np.asarray(image, dtype=np.uint8).astype(np.float32) / np.float32(self.pixel_divisor)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))

    def batch(self, images: Sequence[Image.Image | np.ndarray] | np.ndarray) -> np.ndarray:
        """Several images (or an ``(N, H, W, 3)`` uint8 array) -> ``(N, 3, S, S)`` float32."""
        if len(images) == 0:
            raise ModelInputError("no images to preprocess")
        return np.stack([self(image) for image in images])


class OnnxImageClassifier:
    """An ONNX classifier with the preprocessing and class names recorded in its ``metadata_props``.

    ``preprocessing`` and ``classes`` override (or stand in for) what the file records.
    """

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        preprocessing: ImagePreprocessing | None = None,
        classes: Sequence[str] | None = None,
        threads: int | None = None,
    ):
        import onnxruntime

        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX file not found: {self.path}")
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self._session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        metadata = self._session.get_modelmeta().custom_metadata_map
        if preprocessing is None:
            if PREPROCESSING_KEY not in metadata:
                raise ModelInputError(
                    f"{self.path} does not record its preprocessing (metadata {PREPROCESSING_KEY!r}); "
                    "it was exported before fourds wrote it: give the preprocessing explicitly"
                )
            try:
                preprocessing = ImagePreprocessing.from_json(metadata[PREPROCESSING_KEY])
            except ModelInputError as exc:
                raise ModelInputError(
                    f"{self.path} records a malformed preprocessing (metadata {PREPROCESSING_KEY!r}): {exc}"
                ) from None
        if classes is None:
            if CLASSES_KEY not in metadata:
                raise ModelInputError(f"{self.path} does not record its class names (metadata {CLASSES_KEY!r})")
            classes = parse_class_names(metadata[CLASSES_KEY], f"{self.path} (metadata {CLASSES_KEY!r})")
        self.preprocessing = preprocessing
        self.classes = [str(name) for name in classes]
        self._input_name = self._session.get_inputs()[0].name

    def logits(self, images: Sequence[Image.Image | np.ndarray] | np.ndarray) -> np.ndarray:
        """``(N, num_classes)`` float32 logits of a batch of images."""
        outputs = self._session.run(None, {self._input_name: self.preprocessing.batch(images)})[0]
        if outputs.ndim != 2 or outputs.shape[1] != len(self.classes):
            raise ModelInputError(
                f"{self.path} returned outputs of shape {outputs.shape}, expected (N, {len(self.classes)})"
            )
        return outputs

    def probabilities(self, images: Sequence[Image.Image | np.ndarray] | np.ndarray) -> np.ndarray:
        """Softmax of :meth:`logits`, float64 for a stable sum."""
        return softmax(self.logits(images))


def parse_class_names(text: str, where: str) -> list[str]:
    """A JSON list of class names, as a model records them; :class:`ModelInputError` naming ``where`` otherwise."""
    try:
        classes = json.loads(text)
    except json.JSONDecodeError:
        classes = None
    if not isinstance(classes, list) or not classes or not all(isinstance(name, str) for name in classes):
        raise ModelInputError(f"{where} records malformed class names: {text!r} (expected a JSON list of names)")
    return classes


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def prediction_frame(probabilities: np.ndarray, classes: Sequence[str]):
    """One row per image: ``label`` (class name), ``label_index``, ``probability`` (of that class)."""
    import pandas as pd

    indices = probabilities.argmax(axis=1)
    return pd.DataFrame(
        {
            "label": [classes[index] for index in indices],
            "label_index": indices.astype(np.int64),
            "probability": probabilities[np.arange(len(indices)), indices].astype(np.float64),
        }
    )


class PyfuncImageClassifier:
    """The MLflow ``python_function`` interface: a uint8 image batch in, one labelled row per image out.

    ``model_input``: an ``(N, H, W, 3)`` uint8 RGB array (any H and W: images are resized
    and centre-cropped as in training), or a list of such ``(H, W, 3)`` arrays or PIL images.
    """

    def __init__(self, classifier):
        self.classifier = classifier
        """Anything with ``probabilities(images)`` and ``classes``: :class:`OnnxImageClassifier`, or a teacher's."""

    def predict(self, model_input, params=None):
        if isinstance(model_input, dict) and len(model_input) == 1:  # a named tensor input
            model_input = next(iter(model_input.values()))
        if isinstance(model_input, np.ndarray) and model_input.ndim not in (3, 4):
            raise ModelInputError(
                f"expected a batch of images of shape (N, H, W, 3) (uint8 RGB), got shape {model_input.shape}"
            )
        return prediction_frame(self.classifier.probabilities(model_input), self.classifier.classes)


def _load_pyfunc(data_path: str) -> PyfuncImageClassifier:
    """MLflow's hook: ``data_path`` is the model's data folder holding :data:`ONNX_FILE`."""
    folder = Path(data_path)
    onnx_path = folder / ONNX_FILE if folder.is_dir() else folder
    return PyfuncImageClassifier(OnnxImageClassifier(onnx_path))


def _as_rgb_image(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ModelInputError(f"image arrays must be uint8 (0-255), got {array.dtype}")
    if array.ndim == 2:
        return Image.fromarray(array).convert("RGB")
    if array.ndim == 3 and array.shape[2] == 3:
        return Image.fromarray(array)
    raise ModelInputError(f"an image array must be (H, W) or (H, W, 3) uint8 RGB, got shape {array.shape}")


def _centre_crop(image: Image.Image, side: int) -> Image.Image:
    """torchvision's ``CenterCrop`` on a PIL image, zero padding included."""
    width, height = image.size
    if side > width or side > height:
        padded = Image.new(image.mode, (max(side, width), max(side, height)))
        padded.paste(image, ((side - width) // 2 if side > width else 0, (side - height) // 2 if side > height else 0))
        image = padded
        width, height = image.size
        if (width, height) == (side, side):
            return image
    top = int(round((height - side) / 2.0))
    left = int(round((width - side) / 2.0))
    return image.crop((left, top, left + side, top + side))
