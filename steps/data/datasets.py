"""The datasets of an ingested domain, as every training and evaluation step builds them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from fourds.config import RunConfig
from fourds.data.datasets import ImageTableDataset, build_transforms, unlabelled_dataset
from fourds.data.table import labelled_subset, read_image_table
from steps.artifacts import IngestedDomain


@dataclass
class DomainSplits:
    train: Dataset
    """The labelled training images (the configured label budget of the train split)."""
    val: Dataset
    test: Dataset
    unlabelled: Dataset | None = None
    """The domain's unlabelled images, items ``(image, -1)``, for label-free training terms only;
    None when the domain has none or ``data.unlabelled_batch_ratio`` is 0."""


def domain_splits(
    ingested: IngestedDomain, config: RunConfig, classes: list[str], *, label_budget: bool = True
) -> DomainSplits:
    """Labels index ``classes`` (the teacher's class list when distilling). ``label_budget=False``
    trains on every labelled training image: ``data.label_budget`` is the TARGET's budget, and a
    source teacher is trained on its whole domain."""
    table = read_image_table(Path(ingested.table_path))
    images_dir = Path(ingested.images_dir)
    train_transform = build_transforms(config.data, train=True)
    eval_transform = build_transforms(config.data, train=False)
    budget = config.data.label_budget if label_budget else None
    labelled = labelled_subset(table, budget, config.data.budget_seed, split="train")
    return DomainSplits(
        train=ImageTableDataset(images_dir, labelled, classes, train_transform),
        val=ImageTableDataset(images_dir, _split(table, "val"), classes, eval_transform),
        test=ImageTableDataset(images_dir, _split(table, "test"), classes, eval_transform),
        unlabelled=unlabelled_dataset(images_dir, table, config.data),
    )


def _split(table, split: str):
    return table[table["split"] == split].reset_index(drop=True)
