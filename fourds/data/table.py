"""The per-image table of a domain (``images.csv``), its hash-keyed split and labelled subsets.

One row per image: ``path`` (relative to ``images/``), ``label``, ``split``, ``width``,
``height``, ``mode``, ``bytes``, ``sha256`` (of the file's bytes) and ``decodable``.
Unlabelled images have label ``""`` and split ``unlabelled`` (:data:`UNLABELLED_SPLIT`).
The table is built while streaming over the images, one file in memory at a time, by
the same code for an ingest (:mod:`fourds.data.ingest`) and for a plain folder read in
place (:func:`image_folder_table`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from fourds.data.sources import SPLITS, UNLABELLED_SPLIT, SourceImage, scan_image_folder

TABLE_COLUMNS = ("path", "label", "split", "width", "height", "mode", "bytes", "sha256", "decodable")
_COLUMN_TYPES = {
    "path": str,
    "label": str,
    "split": str,
    "width": "int64",
    "height": "int64",
    "mode": str,
    "bytes": "int64",
    "sha256": str,
    "decodable": bool,
}
_HASH_RANGE = float(16**16)


class ImageTableError(ValueError):
    """An image table is unreadable or lacks columns; the message names the file or the column."""


def split_for(sha256: str, val_fraction: float, test_fraction: float) -> str:
    """Split of an image from its own content hash alone, so adding images never moves existing ones.

    The first 16 hex digits map the hash to a number in [0, 1): below ``test_fraction``
    is test, then ``val_fraction`` of val, the rest train. Identical files share a split.
    """
    check_split_fractions(val_fraction, test_fraction)
    position = int(sha256[:16], 16) / _HASH_RANGE
    if position < test_fraction:
        return "test"
    if position < test_fraction + val_fraction:
        return "val"
    return "train"


def check_split_fractions(val_fraction: float, test_fraction: float) -> None:
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction}: each must be in [0, 1) "
            "and their sum < 1 (something must be left to train on)"
        )


def describe_image(content: bytes) -> dict:
    """Width, height, mode and decodability of one encoded image; never raises on bad data."""
    facts = {"width": 0, "height": 0, "mode": "", "decodable": False}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(content)) as image:
                facts.update(width=image.width, height=image.height, mode=image.mode)
                image.load()  # decodes the pixel data: truncated or corrupt files fail here
        facts["decodable"] = True
    except Exception:  # noqa: BLE001 - any decoder failure means "not decodable", which validation reports
        pass
    return facts


def table_rows(
    images: Iterable[SourceImage],
    *,
    val_fraction: float,
    test_fraction: float,
    copy_into: Path | None = None,
    progress: bool = True,
    description: str = "images",
    total: int | None = None,
) -> Iterator[dict]:
    """One table row per image, reading each file once (and copying it under ``copy_into`` if given)."""
    for image in tqdm(images, desc=description, unit="img", total=total, disable=not progress):
        content = image.file.read_bytes()
        digest = hashlib.sha256(content).hexdigest()
        facts = describe_image(content)
        if copy_into is not None:
            destination = copy_into / image.relative_path
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(content)
        yield {
            "path": image.relative_path,
            "label": image.label,
            "split": image.split or split_for(digest, val_fraction, test_fraction),
            "width": facts["width"],
            "height": facts["height"],
            "mode": facts["mode"],
            "bytes": len(content),
            "sha256": digest,
            "decodable": facts["decodable"],
        }


def write_image_table(rows: Iterable[dict], path: Path) -> int:
    """Write rows to ``path`` as they come (the table never has to fit in memory); returns the count."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=TABLE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def read_image_table(path: str | Path) -> pd.DataFrame:
    """Read ``images.csv`` with its column types (labels stay strings: ``"0"`` is not ``0``)."""
    path = Path(path)
    if not path.is_file():
        raise ImageTableError(f"image table not found: {path}")
    try:
        header = pd.read_csv(path, nrows=0).columns.tolist()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ImageTableError(f"{path}: not a readable CSV table: {exc}") from exc
    missing = [column for column in TABLE_COLUMNS if column not in header]
    if missing:
        raise ImageTableError(f"{path}: missing column(s) {', '.join(missing)} (expected {', '.join(TABLE_COLUMNS)})")
    try:
        return pd.read_csv(path, dtype=_COLUMN_TYPES, keep_default_na=False, na_values=[])
    except (ValueError, pd.errors.ParserError) as exc:
        raise ImageTableError(f"{path}: a column has values of the wrong type: {exc}") from exc


def image_folder_table(
    root: str | Path, *, val_fraction: float = 0.1, test_fraction: float = 0.2, progress: bool = True
) -> tuple[pd.DataFrame, list[str]]:
    """Table and class list of a plain ``<class>/<image>`` folder, read in place (no copy, no DVC).

    For benchmarks and experiments on data that is not ingested; paths in the table are
    relative to ``root``, so ``ImageTableDataset(root, table, classes, ...)`` reads it.
    """
    root = Path(root)
    if not root.is_dir():
        raise ImageTableError(f"image folder not found: {root}")
    listing = scan_image_folder(root)
    rows = table_rows(
        listing.images,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        progress=progress,
        description=f"table of {root.name}",
        total=len(listing.images),
    )
    table = pd.DataFrame(list(rows), columns=list(TABLE_COLUMNS)).astype(_COLUMN_TYPES)
    return table, listing.classes


def split_rows(table: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of one split (``train``, ``val``, ``test`` or ``unlabelled``), renumbered from 0."""
    return table[table["split"] == split].reset_index(drop=True)


def unlabelled_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The table's unlabelled images (split ``unlabelled``), for label-free training terms only."""
    return split_rows(table, UNLABELLED_SPLIT)


def labelled_subset(table: pd.DataFrame, budget: float | int | None, seed: int, split: str = "train") -> pd.DataFrame:
    """The labelled images a run may train on: a stratified, seeded subset of one split.

    Unlabelled images are never picked: ``split`` must be one of train/val/test.

    ``budget``: None = all; a float in (0, 1] = that fraction of every class (rounded,
    at least 2 per class when the class has 2); an int >= 1 = that many per class (all of
    a smaller class). Images are ranked per class by a hash of (seed, content, path), so
    a subset depends only on the seed and the images themselves, not on row order: a
    larger budget keeps every image of a smaller one, and adding images to one class
    leaves the other classes' subsets unchanged.
    """
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    rows = split_rows(table, split)
    if budget is None:
        return rows
    if isinstance(budget, bool) or not isinstance(budget, (int, float)):
        raise ValueError(f"budget must be None, a fraction in (0, 1] or a count per class, got {budget!r}")
    if isinstance(budget, float) and not 0 < budget <= 1:
        raise ValueError(f"a fractional budget must be in (0, 1], got {budget}")
    if isinstance(budget, int) and budget < 1:
        raise ValueError(f"a per-class budget must be >= 1, got {budget}")

    rank = [
        hashlib.sha256(f"{seed}:{digest}:{path}".encode()).hexdigest()
        for digest, path in zip(rows["sha256"], rows["path"])
    ]
    ranked = rows.assign(_rank=rank).sort_values("_rank", kind="stable")
    chosen = []
    for _, members in ranked.groupby("label", sort=True):
        available = len(members)
        if isinstance(budget, float):
            keep = max(round(budget * available), min(2, available))
        else:
            keep = budget
        chosen.append(members.head(min(keep, available)))
    if not chosen:
        return rows
    subset = pd.concat(chosen).drop(columns="_rank")
    return subset.sort_values("path", kind="stable").reset_index(drop=True)
