"""Classifying image files with a trained model, as ``fourds predict`` does, and the preprocessing that goes with it.

:func:`preprocessing_for` turns a run's :class:`~fourds.config.DataConfig` into the
:class:`~fourds.inference.onnx_classifier.ImagePreprocessing` recorded with its model;
:func:`eval_transform` turns it back into the torchvision transform the evaluation step
applies, so the two paths (onnxruntime on files, PyTorch on a split) see the same pixels.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from fourds.config import DataConfig
from fourds.inference.onnx_classifier import ImagePreprocessing, ModelInputError, OnnxImageClassifier

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class ImagePrediction:
    """The predicted class of one image file and the probabilities behind it."""

    image: str
    label: str
    probability: float
    probabilities: dict[str, float]


def preprocessing_for(data: DataConfig) -> ImagePreprocessing:
    """The evaluation preprocessing of ``data`` (resize, centre crop, normalise) as a model records it."""
    return ImagePreprocessing(
        image_size=data.image_size,
        resize_size=data.resize_size or data.image_size,
        mean=tuple(float(v) for v in data.mean),
        std=tuple(float(v) for v in data.std),
    )


def eval_transform(preprocessing: ImagePreprocessing):
    """The torchvision transform that ``preprocessing`` describes: ``build_transforms(data, train=False)`` of the
    :class:`DataConfig` it was recorded from (Resize, CenterCrop, ToTensor, Normalize)."""
    from fourds.data.datasets import build_transforms

    # model_construct: the recorded values were validated by ImagePreprocessing already, and a model may record
    # an input smaller than a new run's DataConfig allows (image_size >= 8).
    data = DataConfig.model_construct(image_size=preprocessing.image_size, resize_size=preprocessing.resize_size,
                                      mean=preprocessing.mean, std=preprocessing.std)
    return build_transforms(data, train=False)


def collect_images(paths: Iterable[str | Path]) -> list[Path]:
    """Image files named directly, and every image file under the folders named (recursively, sorted).

    A named file is taken whatever its suffix (a bad one fails when it is opened); in a
    folder, files with an image suffix (:data:`IMAGE_SUFFIXES`) are. Hidden entries are skipped.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(
                item
                for item in path.rglob("*")
                if item.is_file()
                and item.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in item.relative_to(path).parts)
            )
        else:
            raise FileNotFoundError(f"{path}: no such image file or folder")
    if not found:
        raise FileNotFoundError(
            f"no image files found in {', '.join(map(str, paths))} (looked for {', '.join(IMAGE_SUFFIXES)})"
        )
    return found


def classify_images(
    classifier: OnnxImageClassifier, images: Sequence[Path], *, batch_size: int = 64
) -> list[ImagePrediction]:
    """Predict every image file, ``batch_size`` at a time, in the order given."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    predictions: list[ImagePrediction] = []
    for start in range(0, len(images), batch_size):
        chunk = list(images[start : start + batch_size])
        probabilities = classifier.probabilities([_open_rgb(path) for path in chunk])
        for path, row in zip(chunk, probabilities, strict=True):
            best = int(row.argmax())
            predictions.append(
                ImagePrediction(
                    image=str(path),
                    label=classifier.classes[best],
                    probability=float(row[best]),
                    probabilities={name: float(p) for name, p in zip(classifier.classes, row, strict=True)},
                )
            )
    return predictions


def render_predictions(predictions: Sequence[ImagePrediction], *, as_json: bool = False) -> str:
    """A plain-text table (image, class, probability), or a JSON list with every class's probability."""
    if as_json:
        return json.dumps([asdict(prediction) for prediction in predictions], indent=2)
    rows = [("image", "class", "probability")]
    rows += [(p.image, p.label, f"{p.probability:.4f}") for p in predictions]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return "\n".join(
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}".rstrip() for row in rows
    )


def _open_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ModelInputError(f"{path}: not a readable image ({exc})") from exc
