"""Ingest a domain's images into the workspace's DVC-tracked data folder (pipeline step 1).

``ingest_domain`` reads an image folder, a CSV manifest or an archive of either (local
or http(s), optionally sha256-checked), writes ``data/domains/<name>/`` (images, the
per-image table ``images.csv`` and ``classes.json``), runs ``dvc add data`` and returns
the md5s and git revision that identify exactly what was ingested. Unlabelled images
(an ``unlabelled/`` folder, manifest rows without a label) are copied, tabulated and
versioned like the rest, under ``images/unlabelled/``.

A domain is rebuilt in a staging folder beside it and swapped in only when complete,
so a failed ingest leaves the previous version of the domain untouched.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from fourds.data.sources import (
    SPLITS,
    UNLABELLED_SPLIT,
    DataSourceError,
    SourceListing,
    fetch_source,
    is_url,
    list_source,
)
from fourds.data.table import check_split_fractions, table_rows, write_image_table
from fourds.data.versioning import STAGING_PREFIX, DataVersionError, data_version, track_data_folder
from fourds.workspace import DomainNameError, Workspace, check_domain_name

__all__ = ["CLASSES_FILE", "TABLE_FILE", "DataSourceError", "DataVersionError", "IngestResult", "ingest_domain"]

TABLE_FILE = "images.csv"
CLASSES_FILE = "classes.json"
IMAGES_FOLDER = "images"


@dataclass(frozen=True)
class IngestResult:
    """What an ingest produced and the lineage facts that identify it."""

    name: str
    domain_dir: Path
    images_dir: Path
    table_path: Path
    classes: list[str]
    num_images: int
    domain_md5: str
    """DVC directory md5 of exactly ``data/domains/<name>`` (images, table, class list)."""
    data_md5: str
    """The md5 in ``data.dvc`` for the whole data folder after this ingest."""
    git_revision: str | None
    """HEAD of the git repository holding the workspace; None outside git."""
    source: str
    """The source as given: a URL, or the absolute local path."""
    data_dvc_dirty: bool | None = None
    """True when ``data.dvc`` is not committed as it is now; None outside git."""
    split_counts: dict[str, int] | None = None
    """Images per split: train, val, test and unlabelled."""

    @property
    def unlabelled_images(self) -> int:
        """How many of ``num_images`` have no label (split ``unlabelled``)."""
        return (self.split_counts or {}).get(UNLABELLED_SPLIT, 0)


def ingest_domain(
    source: str | Path,
    name: str,
    workspace: Workspace,
    *,
    sha256: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    progress: bool = True,
) -> IngestResult:
    """Copy a domain's images into ``data/domains/<name>``, tabulate them, and version the data folder.

    Re-ingesting unchanged images gives the same ``domain_md5``; splits come from each
    image's content hash (see :func:`fourds.data.table.split_for`) unless a manifest
    gives them. Raises :class:`DataSourceError` for anything wrong with the source.
    """
    try:
        check_domain_name(name)
    except DomainNameError as exc:  # the workspace's one rule, reported as an ingest error
        raise DataSourceError(str(exc)) from None
    check_split_fractions(val_fraction, test_fraction)
    shown_source = str(source) if is_url(source) else str(Path(source).expanduser().resolve())
    workspace.domains_dir.mkdir(parents=True, exist_ok=True)
    staging = workspace.domains_dir / f"{STAGING_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
    previous = workspace.domains_dir / f"{STAGING_PREFIX}{name}-previous-{uuid.uuid4().hex[:8]}"
    try:
        with tempfile.TemporaryDirectory(prefix="fourds-ingest-") as scratch:
            local = fetch_source(source, Path(scratch) / "download", sha256=sha256)
            listing = list_source(local, Path(scratch), source=shown_source)
            split_counts = _write_domain(listing, staging, name, val_fraction, test_fraction, progress)
        _swap_into_place(staging, workspace.domain_dir(name), previous)
        try:
            data_md5 = track_data_folder(workspace)
        except DataVersionError:
            _restore_previous(workspace.domain_dir(name), previous)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(previous, ignore_errors=True)

    version = data_version(workspace, name)
    domain_dir = workspace.domain_dir(name)
    return IngestResult(
        name=name,
        domain_dir=domain_dir,
        images_dir=domain_dir / IMAGES_FOLDER,
        table_path=domain_dir / TABLE_FILE,
        classes=listing.classes,
        num_images=len(listing.images),
        domain_md5=version.domain_md5,
        data_md5=data_md5,
        git_revision=version.git_revision,
        source=shown_source,
        data_dvc_dirty=version.data_dvc_dirty,
        split_counts=split_counts,
    )


def _write_domain(
    listing: SourceListing, domain_dir: Path, name: str, val_fraction: float, test_fraction: float, progress: bool
) -> dict[str, int]:
    images_dir = domain_dir / IMAGES_FOLDER
    images_dir.mkdir(parents=True)
    for label in listing.classes:  # empty class folders are kept, so validation can see them
        (images_dir / label).mkdir(exist_ok=True)
    split_counts = dict.fromkeys((*SPLITS, UNLABELLED_SPLIT), 0)

    def counted(rows):
        for row in rows:
            split_counts[row["split"]] += 1
            yield row

    rows = table_rows(
        listing.images,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        copy_into=images_dir,
        progress=progress,
        description=f"ingest {name}",
        total=len(listing.images),
    )
    write_image_table(counted(rows), domain_dir / TABLE_FILE)
    (domain_dir / CLASSES_FILE).write_text(json.dumps(listing.classes, indent=2) + "\n")
    return split_counts


def _swap_into_place(staging: Path, domain_dir: Path, previous: Path) -> None:
    if domain_dir.exists():
        domain_dir.rename(previous)
    staging.rename(domain_dir)


def _restore_previous(domain_dir: Path, previous: Path) -> None:
    shutil.rmtree(domain_dir, ignore_errors=True)
    if previous.exists():
        previous.rename(domain_dir)
