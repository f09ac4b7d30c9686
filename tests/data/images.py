"""Small generated images for the data tests: distinct seeds give distinct file contents."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def write_png(path: Path, seed: int, size: int = 12, mode: str = "L") -> Path:
    """A small PNG whose pixels depend only on ``seed`` (distinct seeds, distinct content)."""
    rng = np.random.default_rng(seed)
    channels = {"L": (size, size), "RGB": (size, size, 3)}[mode]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, channels, dtype=np.uint8)).save(path)
    return path


def make_image_folder(root: Path, classes: dict[str, int], *, first_seed: int = 0, size: int = 12) -> Path:
    """``root/<class>/<nn>.png`` with the given number of images per class (0 = an empty class folder)."""
    seed = first_seed
    for label, count in classes.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            write_png(root / label / f"{index:02d}.png", seed, size)
            seed += 1
    return root


def add_unlabelled(root: Path, count: int, *, first_seed: int = 1000, size: int = 12) -> Path:
    """``root/unlabelled/u<nn>.png``: images without a label beside the class folders."""
    for index in range(count):
        write_png(root / "unlabelled" / f"u{index:02d}.png", first_seed + index, size)
    return root


def tar_gz_of(folder: Path, archive: Path, *, wrapper: str | None = None) -> Path:
    """``folder``'s content in a .tar.gz, under a wrapper directory when given (as real archives do)."""
    with tarfile.open(archive, "w:gz") as handle:
        handle.add(folder, arcname=wrapper or ".")
    return archive
