"""Torch datasets over a per-image table, and the transforms that ``DataConfig`` describes.

Images are opened lazily, one per ``__getitem__``, and converted to RGB so that
grayscale domains (digits) feed the same 3-channel networks as colour ones.
Label indices are positions in the TEACHER's class list, so teacher and student logits
mean the same classes whatever the domain's own folder order. Unlabelled images get the
label index :data:`UNLABELLED_TARGET` (-1: no class).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

from fourds.config import DataConfig
from fourds.data.sources import UNLABELLED_SPLIT
from fourds.data.table import labelled_subset, split_rows, unlabelled_rows

UNLABELLED_TARGET = -1
"""The label index of an unlabelled image."""

Transform = Callable[[Image.Image], torch.Tensor]


class _TableImages(Dataset):
    """The images of a table's ``path`` column (relative to ``images_dir``), opened lazily as RGB."""

    def __init__(self, images_dir: str | Path, table: pd.DataFrame, transform: Transform | None) -> None:
        self.images_dir = Path(images_dir)
        self.transform = transform
        self.paths: list[str] = table["path"].astype(str).tolist()

    def __len__(self) -> int:
        return len(self.paths)

    def load_image(self, index: int) -> torch.Tensor | Image.Image:
        path = self.images_dir / self.paths[index]
        with Image.open(path) as image:
            image = image.convert("RGB")
        return self.transform(image) if self.transform else image


class ImageTableDataset(_TableImages):
    """``(image tensor, label index)`` for each row of an image table (paths relative to ``images_dir``)."""

    def __init__(
        self,
        images_dir: str | Path,
        table: pd.DataFrame,
        classes: list[str],
        transform: Transform | None = None,
    ) -> None:
        _require_columns(table, ("path", "label"))
        super().__init__(images_dir, table, transform)
        self.classes = list(classes)
        index_of = {name: position for position, name in enumerate(self.classes)}
        labels = table["label"].astype(str)
        unknown = sorted(set(labels) - set(index_of))
        if unknown:
            first_path = table.loc[labels == unknown[0], "path"].iloc[0]
            raise ValueError(
                f"label(s) {', '.join(map(repr, unknown))} not in the teacher's class list {self.classes} "
                f"(e.g. {first_path} in {self.images_dir})"
            )
        self.targets: list[int] = [index_of[label] for label in labels]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.load_image(index), self.targets[index]


class UnlabelledImageDataset(_TableImages):
    """``(image tensor, UNLABELLED_TARGET)`` for each unlabelled row of an image table.

    For the label-free training terms; labelled rows are refused, so that a labelled
    image is never silently trained on as unlabelled (or the reverse).
    """

    def __init__(self, images_dir: str | Path, table: pd.DataFrame, transform: Transform | None = None) -> None:
        _require_columns(table, ("path", "split"))
        labelled = table[table["split"] != UNLABELLED_SPLIT]
        if len(labelled):
            raise ValueError(
                f"{len(labelled)} row(s) of split {labelled['split'].iloc[0]!r} given as unlabelled images "
                f"(e.g. {labelled['path'].iloc[0]} in {images_dir}); only split {UNLABELLED_SPLIT!r} rows are"
            )
        super().__init__(images_dir, table, transform)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.load_image(index), UNLABELLED_TARGET


def unlabelled_dataset(
    images_dir: str | Path, table: pd.DataFrame, config: DataConfig
) -> UnlabelledImageDataset | None:
    """The table's unlabelled images for semi-supervised training, with the TRAINING transform.

    None when the table has none or ``config.unlabelled_batch_ratio`` is 0: training
    then uses the labelled images only.
    """
    rows = unlabelled_rows(table)
    if rows.empty or config.unlabelled_batch_ratio == 0:
        return None
    return UnlabelledImageDataset(images_dir, rows, build_transforms(config, train=True))


@dataclass
class DomainSplits:
    """The datasets of an ingested domain, as every training and evaluation of a run builds them."""

    train: Dataset
    """The labelled training images (the configured label budget of the train split)."""
    val: Dataset
    test: Dataset
    unlabelled: Dataset | None = None
    """The domain's unlabelled images, items ``(image, -1)``, for label-free training terms only;
    None when the domain has none or ``data.unlabelled_batch_ratio`` is 0."""


def domain_splits(
    images_dir: str | Path, table: pd.DataFrame, config: DataConfig, classes: list[str], *, label_budget: bool = True
) -> DomainSplits:
    """Labels index ``classes`` (the teacher's class list when distilling). ``label_budget=False``
    trains on every labelled training image: ``data.label_budget`` is the TARGET's budget, and a
    source teacher is trained on its whole domain."""
    train_transform = build_transforms(config, train=True)
    eval_transform = build_transforms(config, train=False)
    labelled = labelled_subset(table, config.label_budget if label_budget else None, config.budget_seed, split="train")
    return DomainSplits(
        train=ImageTableDataset(images_dir, labelled, classes, train_transform),
        val=ImageTableDataset(images_dir, split_rows(table, "val"), classes, eval_transform),
        test=ImageTableDataset(images_dir, split_rows(table, "test"), classes, eval_transform),
        unlabelled=unlabelled_dataset(images_dir, table, config),
    )


def _require_columns(table: pd.DataFrame, columns: tuple[str, ...]) -> None:
    for column in columns:
        if column not in table.columns:
            raise ValueError(f"image table has no {column!r} column (columns: {', '.join(map(str, table.columns))})")


def build_transforms(config: DataConfig, train: bool) -> T.Compose:
    """Resize, crop (random with padding and optional flip in training, centred in evaluation), normalise.

    When no resize margin is left (``resize_size`` is None or equals ``image_size``, as for
    32px digits), the training crop pads by ``image_size // 8`` so images still get shifted.
    """
    resize = config.resize_size or config.image_size
    if resize < config.image_size:
        raise ValueError(
            f"data.resize_size ({config.resize_size}) must be >= data.image_size ({config.image_size}), "
            "or None to resize straight to image_size"
        )
    steps: list[Callable] = [T.Resize(resize)]
    if train and config.random_crop:
        padding = config.image_size // 8 if resize == config.image_size else 0
        steps.append(T.RandomCrop(config.image_size, padding=padding))
    else:
        steps.append(T.CenterCrop(config.image_size))
    if train and config.horizontal_flip:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(config.mean, config.std)]
    return T.Compose(steps)
