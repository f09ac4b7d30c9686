"""A large digit shift built from the shared data: MNIST digits blended into crops of PACS photos.

The recipe of MNIST-M (Ganin & Lempitsky, ICML 2015), made here because MNIST-M itself is
not among the shared datasets: each output pixel is ``|background - digit|`` per colour
channel, where the background is a random 32 px crop of a PACS photo. A teacher trained on
plain MNIST sees a digit it knows under colours and textures it never saw; its accuracy
drops far more than on USPS (the small digit shift).

The digits come from MNIST's TEST split (the first ``train_per_class + test_per_class``
files per class by file number), so none of them is among the source teacher's training
images (MNIST train). The first ``train_per_class`` of each class form the domain's
``train/`` folder, the rest its ``test/``. Everything is drawn from a generator seeded with
``seed``: the same inputs give the same bytes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 32
"""Output side in pixels (the digit suites' input size)."""
CROP_FROM = 64
"""Photos (128 px) are shrunk to this side before a 32 px crop: textures at a digit's scale."""


def render_textured_digits(
    mnist_root: Path, photo_root: Path, out: Path, *, train_per_class: int = 200, test_per_class: int = 100, seed: int = 0
) -> Path:
    """Write ``out/{train,test}/<digit>/<NNNNN>.png`` once (a marker records the settings); returns ``out``."""
    settings = f"train {train_per_class} test {test_per_class} seed {seed} side {SIDE} crop-from {CROP_FROM}\n"
    marker = out / ".rendered"
    if marker.is_file() and marker.read_text() == settings:
        return out
    photos = sorted(photo_root.rglob("*.jpg"))
    if not photos:
        raise FileNotFoundError(f"no PACS photos under {photo_root}: the textured digits need them as backgrounds")
    rng = np.random.default_rng(seed)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    for digit_dir in sorted(path for path in (mnist_root / "test").iterdir() if path.is_dir()):
        files = sorted(digit_dir.glob("*.png"))[: train_per_class + test_per_class]
        if len(files) < train_per_class + test_per_class:
            raise ValueError(f"{digit_dir} holds {len(files)} images, fewer than the {train_per_class + test_per_class} needed")
        for position, digit_file in enumerate(files):
            split = "train" if position < train_per_class else "test"
            destination = staging / split / digit_dir.name / digit_file.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            background = _background_crop(photos[rng.integers(len(photos))], rng)
            blend_digit(digit_file, background).save(destination)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    marker.write_text(settings)
    return out


def _background_crop(photo: Path, rng: np.random.Generator) -> np.ndarray:
    with Image.open(photo) as image:
        shrunk = np.asarray(image.convert("RGB").resize((CROP_FROM, CROP_FROM), Image.BILINEAR), dtype=np.int16)
    top, left = rng.integers(0, CROP_FROM - SIDE + 1, size=2)
    return shrunk[top : top + SIDE, left : left + SIDE]


def blend_digit(digit_file: Path, background: np.ndarray) -> Image.Image:
    """``|background - digit|`` per channel: dark strokes on bright texture and bright on dark."""
    with Image.open(digit_file) as image:
        digit = np.asarray(image.convert("L").resize((SIDE, SIDE), Image.BILINEAR), dtype=np.int16)
    blended = np.abs(background - digit[:, :, None]).astype(np.uint8)
    return Image.fromarray(blended, mode="RGB")
