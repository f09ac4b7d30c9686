"""Where a domain's images come from: an image folder, a CSV manifest, an archive of either, or a URL.

Every source is turned into the same thing, a :class:`SourceListing`: the class names
found and one :class:`SourceImage` per image (where to read it, where it lands under
``images/``, its label and, for manifests that carry one, a given split). Reading the
images themselves is left to the table builder, one image at a time.

A domain may also hold unlabelled images: an ``unlabelled/`` folder beside the class
folders, or manifest rows with an empty label. They land in ``images/unlabelled/`` with
label ``""`` and split :data:`UNLABELLED_SPLIT`, whatever their content hash.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from fourds.hashing import file_sha256

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"})
ARCHIVE_SUFFIXES = frozenset({".gz", ".tgz", ".tar", ".zip", ".bz2", ".xz"})
SPLITS = ("train", "val", "test")
"""The labelled splits; only these are ever trained on with labels, validated on or tested on."""
UNLABELLED_SPLIT = "unlabelled"
"""The split of every image without a label: never train/val/test, so never evaluated on."""
UNLABELLED_FOLDER = "unlabelled"
"""The folder of unlabelled images, beside the class folders of a source and under ``images/``; not a class."""
MANIFEST_COLUMNS = ("path", "label")
URL_TIMEOUT_SECONDS = 60
_DOWNLOAD_CHUNK_BYTES = 1 << 20


class DataSourceError(ValueError):
    """A source cannot be ingested; the message names the source and what is wrong with it."""


@dataclass(frozen=True)
class SourceImage:
    """One image of a source: read from ``file``, stored as ``images/<relative_path>``."""

    file: Path
    relative_path: str
    label: str
    split: str | None = None


@dataclass(frozen=True)
class SourceListing:
    """What a source holds, before any image is opened."""

    classes: list[str]
    """Class names, sorted; for image folders this includes empty class folders."""
    images: list[SourceImage]
    """Sorted by ``relative_path``, so that tables and hashes do not depend on listing order."""


URL_SCHEMES = ("http", "https", "s3")
"""Remote sources: http(s) downloads, and s3://bucket/key (a file or a folder prefix; ``$AWS_ENDPOINT_URL``
points at an S3-compatible server such as MinIO)."""


def is_url(source: str | Path) -> bool:
    return isinstance(source, str) and urllib.parse.urlparse(source).scheme in URL_SCHEMES


def fetch_source(source: str | Path, download_dir: Path, *, sha256: str | None = None) -> Path:
    """Local path of ``source`` (downloading a URL into ``download_dir``), checked against ``sha256``."""
    if is_url(source):
        path = _download(str(source), download_dir)
    else:
        if isinstance(source, str) and "://" in source:
            raise DataSourceError(f"{source}: unsupported URL scheme (use http://, https://, s3:// or a local path)")
        path = Path(source).expanduser().resolve()
        if not path.exists():
            raise DataSourceError(f"{source}: no such file or folder")
    if sha256 is not None:
        if path.is_dir():
            raise DataSourceError(f"{source}: a sha256 checks a single file (an archive or a manifest), not a folder")
        actual = file_sha256(path)
        if actual != sha256.lower():
            raise DataSourceError(f"{source}: sha256 mismatch: expected {sha256.lower()}, got {actual}")
    return path


def list_source(path: Path, unpack_dir: Path, *, source: str | Path | None = None) -> SourceListing:
    """List the images of a local folder, manifest or archive (archives are unpacked into ``unpack_dir``)."""
    shown = source if source is not None else path
    if path.is_dir():
        return _list_folder_or_manifest(path, shown)
    if tarfile.is_tarfile(path) or zipfile.is_zipfile(path):
        root = _unpack_archive(path, unpack_dir, shown)
        return _list_folder_or_manifest(_descend_wrapper_folders(root), shown)
    if path.suffix.lower() == ".csv":
        return read_manifest(path, shown=shown)
    if path.suffix.lower() in ARCHIVE_SUFFIXES:
        raise DataSourceError(f"{shown}: not a valid tar or zip archive (cannot read its header)")
    raise DataSourceError(
        f"{shown}: unsupported source format (expected an image folder, a .csv manifest, or a .tar.gz/.tar/.zip archive)"
    )


def scan_image_folder(root: Path, *, shown: str | Path | None = None) -> SourceListing:
    """List ``root/<class>/<image>``: every visible sub-folder is a class, empty ones included.

    The sub-folder ``unlabelled/`` (:data:`UNLABELLED_FOLDER`) is not a class: its images are unlabelled.
    """
    shown = shown if shown is not None else root
    classes: list[str] = []
    images: list[SourceImage] = []
    top_level_images: list[str] = []
    skipped = 0
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            if entry.suffix.lower() in IMAGE_SUFFIXES:
                top_level_images.append(entry.name)
            continue
        if not entry.is_dir():
            continue
        unlabelled = entry.name == UNLABELLED_FOLDER
        if not unlabelled:
            classes.append(entry.name)
        for file in sorted(entry.iterdir()):
            if file.name.startswith("."):
                continue
            if file.is_dir():
                raise DataSourceError(
                    f"{shown}: sub-folder {entry.name}/{file.name}/; an image folder is <class>/<image>, plus "
                    f"{UNLABELLED_FOLDER}/<image> for images without a label (point the source at the folder whose "
                    "sub-folders are the classes)"
                )
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                skipped += 1
            elif unlabelled:
                images.append(unlabelled_image(file, file.name))
            else:
                images.append(SourceImage(file, f"{entry.name}/{file.name}", entry.name))
    if top_level_images:
        raise DataSourceError(
            f"{shown}: {len(top_level_images)} image(s) outside any class folder, e.g. {top_level_images[0]}; "
            "an image folder is <class>/<image>"
        )
    if not images:
        raise DataSourceError(f"{shown}: no images found (expected <class>/<image> with suffixes {_suffix_list()})")
    _require_labelled_images(images, shown)
    if skipped:
        logger.info("%s: skipped %d non-image file(s)", shown, skipped)
    return SourceListing(classes=classes, images=images)


def read_manifest(path: Path, *, shown: str | Path | None = None) -> SourceListing:
    """Read a ``path,label[,split]`` CSV; relative paths are relative to the manifest's folder.

    Each image lands as ``images/<label>/<file name>``, so a manifest of an image folder
    gives exactly the same domain as the folder itself. A row with an empty label is an
    unlabelled image (``images/unlabelled/<file name>``, split ``unlabelled``).
    """
    shown = shown if shown is not None else path
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in MANIFEST_COLUMNS if name not in header]
        if missing:
            raise DataSourceError(
                f"{shown}: manifest is missing column(s) {', '.join(missing)} (header: {','.join(header) or 'empty'}; "
                "expected path,label[,split])"
            )
        reader.fieldnames = header
        images: list[SourceImage] = []
        missing_files: list[str] = []
        destinations: dict[str, int] = {}
        for row_number, row in enumerate(reader, start=2):
            file_text, label = (row["path"] or "").strip(), (row["label"] or "").strip()
            split = (row.get("split") or "").strip() or None
            where = f"{shown}, line {row_number}"
            if not file_text:
                raise DataSourceError(f"{where}: empty path")
            if label:
                check_label(label, where=where)
                if split is not None and split not in SPLITS:
                    raise DataSourceError(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
            elif split not in (None, UNLABELLED_SPLIT):
                raise DataSourceError(
                    f"{where}: split {split!r} given to an unlabelled image (empty label); unlabelled images "
                    f"are never in {', '.join(SPLITS)} (leave the split empty)"
                )
            file = Path(file_text)
            file = file if file.is_absolute() else path.parent / file
            if not file.is_file():
                missing_files.append(f"line {row_number}: {file_text}")
                continue
            if label:
                image = SourceImage(file.resolve(), f"{label}/{file.name}", label, split)
            else:
                image = unlabelled_image(file.resolve(), file.name)
            if image.relative_path in destinations:
                raise DataSourceError(
                    f"{where}: {file_text} lands on images/{image.relative_path}, like line "
                    f"{destinations[image.relative_path]}; file names must be unique within a label "
                    "(and among unlabelled images)"
                )
            destinations[image.relative_path] = row_number
            images.append(image)
    if missing_files:
        examples = "; ".join(missing_files[:5])
        raise DataSourceError(f"{shown}: {len(missing_files)} listed file(s) not found, e.g. {examples}")
    if not images:
        raise DataSourceError(f"{shown}: the manifest lists no images")
    _require_labelled_images(images, shown)
    images.sort(key=lambda image: image.relative_path)
    return SourceListing(classes=sorted({image.label for image in images if image.label}), images=images)


def unlabelled_image(file: Path, name: str) -> SourceImage:
    """An image without a label, read from ``file``: lands as ``images/unlabelled/<name>``, in the unlabelled split."""
    return SourceImage(file, f"{UNLABELLED_FOLDER}/{name}", "", UNLABELLED_SPLIT)


def check_label(label: str, *, where: str) -> None:
    """A label becomes a folder name: refuse what cannot be one, and the unlabelled images' folder."""
    if not label or label in (".", "..") or label.startswith(".") or re.search(r"[/\\\x00]", label):
        raise DataSourceError(f"{where}: label {label!r} cannot be a class folder name")
    if label == UNLABELLED_FOLDER:
        raise DataSourceError(
            f"{where}: label {label!r} is reserved for images without a label (leave the label empty instead)"
        )


def _require_labelled_images(images: list[SourceImage], shown: str | Path) -> None:
    """Unlabelled images only add to a domain: without a labelled image nothing can be trained or tested."""
    if all(image.split == UNLABELLED_SPLIT for image in images):
        raise DataSourceError(
            f"{shown}: only unlabelled images ({len(images)}); a domain needs labelled images too "
            "(<class>/<image> folders, or manifest rows with a label)"
        )


def _list_folder_or_manifest(root: Path, shown: str | Path) -> SourceListing:
    """A folder with exactly one CSV at its top level is a manifest; otherwise an image folder."""
    manifests = [entry for entry in root.glob("*.csv") if entry.is_file() and not entry.name.startswith(".")]
    if len(manifests) == 1:
        return read_manifest(manifests[0], shown=f"{shown} ({manifests[0].name})")
    if len(manifests) > 1:
        names = ", ".join(sorted(entry.name for entry in manifests))
        raise DataSourceError(f"{shown}: several CSV files at the top level ({names}); keep one manifest")
    return scan_image_folder(root, shown=shown)


def _unpack_archive(path: Path, unpack_dir: Path, shown: str | Path) -> Path:
    target = unpack_dir / "unpacked"
    target.mkdir(parents=True, exist_ok=True)
    try:
        if tarfile.is_tarfile(path):
            with tarfile.open(path) as archive:
                # The "data" filter refuses absolute paths, links out of the target and device files.
                archive.extractall(target, filter="data")
        else:
            with zipfile.ZipFile(path) as archive:
                archive.extractall(target)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataSourceError(f"{shown}: cannot unpack the archive: {exc}") from exc
    return target


def _descend_wrapper_folders(root: Path) -> Path:
    """Skip the single top folder archives usually wrap their content in (``usps/...``)."""
    while True:
        entries = [entry for entry in root.iterdir() if not entry.name.startswith(".") and entry.name != "__MACOSX"]
        if len(entries) != 1 or not entries[0].is_dir():
            return root
        only = entries[0]
        # A lone folder holding images is a single class folder, not a wrapper.
        if any(child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES for child in only.iterdir()):
            return root
        root = only


def _download(url: str, download_dir: Path) -> Path:
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    download_dir.mkdir(parents=True, exist_ok=True)
    target = download_dir / name
    if url.startswith("s3://"):
        return _download_s3(url, target)
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_SECONDS) as response, target.open("wb") as handle:
            shutil.copyfileobj(response, handle, _DOWNLOAD_CHUNK_BYTES)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DataSourceError(f"{url}: download failed: {exc}") from exc
    return target


def _download_s3(url: str, target: Path) -> Path:
    """An S3 object, or every object under an S3 prefix (a folder), through fsspec/s3fs."""
    import fsspec

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    fs = fsspec.filesystem("s3", client_kwargs={"endpoint_url": endpoint} if endpoint else {})
    try:
        if not fs.exists(url):
            raise DataSourceError(f"{url}: no such S3 object or prefix")
        fs.get(url, str(target), recursive=fs.isdir(url))
    except DataSourceError:
        raise
    except Exception as exc:  # s3fs raises botocore's, aiohttp's and its own errors
        raise DataSourceError(f"{url}: download failed: {type(exc).__name__}: {exc}") from exc
    return target


def _suffix_list() -> str:
    return ", ".join(sorted(IMAGE_SUFFIXES))
