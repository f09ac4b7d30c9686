"""Image-folder domains for the benchmark: unpacked tarballs, cached per-image tables, splits.

Tables come from ``fourds.data.table.image_folder_table`` (the library's reader of a
plain ``<class>/<image>`` folder). A domain folder with ``train/`` and ``test/``
sub-folders keeps that split (digits); any other folder is split by the library's
content hash (``split_for``: the first 16 hex digits of the image's sha256 as a number
in [0, 1); below ``HASH_TEST_FRACTION`` is test, the rest train), so the split never
depends on file names, listing order or what else is in the folder. No validation
split is taken from the domain: validation, where a study or the scratch guard needs it,
is carved from the labelled training images (``split_validation``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fourds.data.datasets import ImageTableDataset, build_transforms
from fourds.data.demo import generate_demo_domains
from fourds.data.sources import UNLABELLED_SPLIT
from fourds.data.table import image_folder_table, labelled_subset, read_image_table, split_rows, write_image_table
from fourds.hashing import file_sha256
from fourds.config import DataConfig
from benchmarks.suites import TEXTURED_DIGITS, BudgetSpec, DomainSpec
from benchmarks.textured_digits import render_textured_digits

HASH_TEST_FRACTION = 0.2
DEMO_PREFIX = "<demo>/"
GIVEN_SPLITS = ("train", "test")


VALIDATION_FRACTION = 0.25
"""Share of each class's labelled images held out for validation (studies, the scratch guard)."""
VALIDATION_SEED_OFFSET = 1000
"""The hold-out draw's generator is seeded with this plus the cell's seed."""

@dataclass
class Domain:
    """A domain's images and its per-image table (``path`` relative to ``root``, ``split`` train/test)."""

    name: str
    root: Path
    table: pd.DataFrame
    classes: list[str]
    split_rule: str
    archive_sha256: str | None

    def rows(self, split: str) -> pd.DataFrame:
        return split_rows(self.table, split)

    def content_digest(self) -> str:
        """sha256 over (path, image sha256, split) of every row: what this domain's numbers were computed on."""
        digest = hashlib.sha256()
        for path, image_sha, split in sorted(zip(self.table["path"], self.table["sha256"], self.table["split"])):
            digest.update(f"{path}\t{image_sha}\t{split}\n".encode())
        return digest.hexdigest()

    def dataset(self, rows: pd.DataFrame, data: DataConfig, *, train: bool, classes: list[str]) -> ImageTableDataset:
        return ImageTableDataset(self.root, rows, classes, transform=build_transforms(data, train=train))


def unpack_archive(archive: Path, into: Path) -> str:
    """Unpack ``archive`` under ``into`` once (a marker file holds its sha256); returns the sha256."""
    sha256 = file_sha256(archive)
    marker = into / f".unpacked-{archive.name}"
    if marker.is_file() and marker.read_text().strip() == sha256:
        return sha256
    print(f"unpacking {archive} into {into}", flush=True)
    into.mkdir(parents=True, exist_ok=True)
    staging = into / f".staging-{archive.name}"
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(archive) as handle:
        handle.extractall(staging, filter="data")
    for entry in staging.iterdir():
        destination = into / entry.name
        shutil.rmtree(destination, ignore_errors=True)
        entry.rename(destination)
    shutil.rmtree(staging, ignore_errors=True)
    marker.write_text(sha256 + "\n")
    return sha256


def load_domain(spec: DomainSpec, *, data_dir: Path, work_dir: Path) -> Domain:
    """The domain ``spec`` names, its table read from the cache when the folder has not changed."""
    archive_sha = None
    if spec.archive is not None:
        archive_sha = _unpacked(data_dir / spec.archive, work_dir, spec)
        root = work_dir / "data" / spec.folder
    elif spec.folder.startswith(DEMO_PREFIX):
        root = demo_domains(work_dir) / spec.folder.removeprefix(DEMO_PREFIX)
    elif spec.folder == TEXTURED_DIGITS:
        # Rendered from two archives: their checksums together identify the inputs.
        shas = [_unpacked(data_dir / name, work_dir, spec) for name in ("mnist.tar.gz", "pacs.tar.gz")]
        archive_sha = "+".join(shas)
        root = render_textured_digits(
            work_dir / "data" / "mnist", work_dir / "data" / "pacs" / "photo", work_dir / "textured-digits"
        )
    else:
        root = Path(spec.folder)
    if not root.is_dir():
        raise FileNotFoundError(f"domain folder not found: {root}")

    given_split = all((root / split).is_dir() for split in GIVEN_SPLITS)
    table = _cached_table(root, work_dir / "tables", given_split=given_split)
    classes = sorted(table["label"].unique().tolist())
    rule = "given train/ and test/ folders" if given_split else f"content hash, test fraction {HASH_TEST_FRACTION}"
    return Domain(spec.name, root, table, classes, rule, archive_sha)


def _unpacked(archive: Path, work_dir: Path, spec: DomainSpec) -> str:
    if not archive.is_file():
        raise FileNotFoundError(f"{archive} not found: the {spec.name} domain comes from this archive (--data-dir)")
    return unpack_archive(archive, work_dir / "data")


def demo_domains(work_dir: Path) -> Path:
    """The library's generated demo domains (smoke suite), rendered once; identical bytes every time."""
    demo_dir = work_dir / "demo"
    if not (demo_dir / "target").is_dir():
        generate_demo_domains(
            demo_dir, images_per_class=10, source_images_per_class=10, unlabelled_per_class=0, image_size=32, seed=0
        )
    return demo_dir


def _cached_table(root: Path, cache_dir: Path, *, given_split: bool) -> pd.DataFrame:
    signature = _folder_signature(root)
    cache = cache_dir / f"{root.name}-{signature[:16]}.csv"
    if cache.is_file():
        return read_image_table(cache)
    if given_split:
        parts = []
        for split in GIVEN_SPLITS:
            part, _ = image_folder_table(root / split, val_fraction=0.0, test_fraction=0.0)
            parts.append(part.assign(path=split + "/" + part["path"], split=split))
        table = pd.concat(parts, ignore_index=True)
    else:
        table, _ = image_folder_table(root, val_fraction=0.0, test_fraction=HASH_TEST_FRACTION)
    undecodable = table[~table["decodable"]]
    if len(undecodable):
        raise ValueError(f"{root}: {len(undecodable)} image(s) cannot be decoded, e.g. {undecodable['path'].iloc[0]}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = cache.with_suffix(".partial")
    write_image_table(table.to_dict("records"), staging)
    staging.replace(cache)
    return read_image_table(cache)


def _folder_signature(root: Path) -> str:
    """sha256 over every file's relative path, size and modification time (cheap: no file is read)."""
    digest = hashlib.sha256(str(root.resolve()).encode())
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in sorted(files):
            path = Path(folder) / name
            stat = path.stat()
            digest.update(f"{path.relative_to(root)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


MONITOR_SEED = 2000
"""Seed of the monitoring images' draw: one fixed set for every budget, method and seed."""


def monitoring_rows(domain: Domain, images_per_class: int) -> pd.DataFrame:
    """Target training images held out to draw validation curves: labelled, but never trained on."""
    if images_per_class < 1:
        return domain.table.iloc[0:0]
    return labelled_subset(domain.table, images_per_class, seed=MONITOR_SEED, split="train")


def labelled_images(domain: Domain, budget: BudgetSpec, seed: int, *, held_out: pd.DataFrame | None = None) -> pd.DataFrame:
    """The labelled target training images of one budget and seed: stratified, fixed by the seed.

    ``budget.fraction`` of each class, and at least ``budget.min_per_class``. Both come from
    the library's ``labelled_subset`` ranking, which is the same for a fraction and a count,
    so their union is simply the first ``max(fraction * n, min_per_class)`` images per class.
    ``held_out`` rows (the monitoring images) are never picked; removing them leaves the
    ranking of the others unchanged.
    """
    table = _without(domain.table, held_out)
    by_fraction = labelled_subset(table, budget.fraction, seed, split="train")
    by_count = labelled_subset(table, budget.min_per_class, seed, split="train")
    union = pd.concat([by_fraction, by_count]).drop_duplicates(subset="path")
    return union.sort_values("path", kind="stable").reset_index(drop=True)


def unlabelled_images(domain: Domain, labelled: pd.DataFrame, held_out: pd.DataFrame | None = None) -> pd.DataFrame:
    """The semi-supervised setting's unlabelled pool: every target training image outside the label
    budget and the monitoring images, with its label removed and split ``unlabelled`` (as an ingested
    domain's unlabelled images are), so the library's ``unlabelled_dataset`` reads it."""
    pool = _without(_without(domain.rows("train"), labelled), held_out)
    return pool.assign(label="", split=UNLABELLED_SPLIT).reset_index(drop=True)


def _without(rows: pd.DataFrame, excluded: pd.DataFrame | None) -> pd.DataFrame:
    if excluded is None or excluded.empty:
        return rows
    return rows[~rows["path"].isin(set(excluded["path"]))]


def split_validation(labelled: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit, val): a stratified quarter of the labelled images for validation, the rest to train on.

    Per class, ``round(VALIDATION_FRACTION * n)`` images, at least 1 and at most ``n - 1``,
    drawn with a generator seeded by ``VALIDATION_SEED_OFFSET + seed``.
    """
    rng = np.random.default_rng(VALIDATION_SEED_OFFSET + seed)
    val_paths = []
    for _, members in labelled.sort_values("path").groupby("label", sort=True):
        count = min(max(round(VALIDATION_FRACTION * len(members)), 1), len(members) - 1)
        val_paths += list(rng.permutation(members["path"].to_numpy())[:count])
    is_val = labelled["path"].isin(val_paths)
    return labelled[~is_val].reset_index(drop=True), labelled[is_val].reset_index(drop=True)


def evaluation_rows(domain: Domain, images_per_class: int | None) -> pd.DataFrame:
    """The test rows evaluated: all of them, or a fixed stratified subset (seed 0) of ``images_per_class``."""
    if images_per_class is None:
        return domain.rows("test")
    return labelled_subset(domain.table, images_per_class, seed=0, split="test")


def source_training_rows(domain: Domain, images_per_class: int | None) -> pd.DataFrame:
    if images_per_class is None:
        return domain.rows("train")
    return labelled_subset(domain.table, images_per_class, seed=0, split="train")

