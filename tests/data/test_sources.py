from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from fourds.data.sources import DataSourceError, fetch_source, list_source, read_manifest, scan_image_folder

from .images import add_unlabelled, make_image_folder, tar_gz_of, write_png


def test_image_folder_lists_sorted_images_and_keeps_empty_classes(tmp_path):
    root = make_image_folder(tmp_path / "d", {"b": 2, "a": 1, "empty": 0})
    (root / "a" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()

    listing = scan_image_folder(root)

    assert listing.classes == ["a", "b", "empty"]
    assert [image.relative_path for image in listing.images] == ["a/00.png", "b/00.png", "b/01.png"]
    assert [image.label for image in listing.images] == ["a", "b", "b"]


def test_image_folder_refuses_images_outside_class_folders(tmp_path):
    root = make_image_folder(tmp_path / "d", {"a": 1})
    write_png(root / "stray.png", 99)
    with pytest.raises(DataSourceError, match=r"outside any class folder, e\.g\. stray\.png"):
        scan_image_folder(root)


def test_image_folder_refuses_nested_folders(tmp_path):
    root = make_image_folder(tmp_path / "d", {"a": 1})
    write_png(root / "a" / "deeper" / "x.png", 5)
    with pytest.raises(DataSourceError, match=r"a/deeper/"):
        scan_image_folder(root)


def test_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "d" / "a").mkdir(parents=True)
    with pytest.raises(DataSourceError, match="no images found"):
        list_source(tmp_path / "d", tmp_path / "unpack")


def test_unlabelled_folder_is_not_a_class(tmp_path):
    root = add_unlabelled(make_image_folder(tmp_path / "d", {"a": 1, "z": 1}), 2)

    listing = scan_image_folder(root)

    assert listing.classes == ["a", "z"]
    assert [(i.relative_path, i.label, i.split) for i in listing.images] == [
        ("a/00.png", "a", None),
        ("unlabelled/u00.png", "", "unlabelled"),
        ("unlabelled/u01.png", "", "unlabelled"),
        ("z/00.png", "z", None),
    ]


def test_a_domain_of_unlabelled_images_only_is_refused(tmp_path):
    root = add_unlabelled(tmp_path / "d", 2)
    with pytest.raises(DataSourceError, match=r"only unlabelled images \(2\); a domain needs labelled images too"):
        scan_image_folder(root)
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label\nd/unlabelled/u00.png,\n")
    with pytest.raises(DataSourceError, match="only unlabelled images"):
        read_manifest(manifest)


def test_manifest_rows_without_a_label_are_unlabelled_images(tmp_path):
    write_png(tmp_path / "raw" / "x.png", 1)
    write_png(tmp_path / "raw" / "y.png", 2)
    write_png(tmp_path / "raw" / "z.png", 3)
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label,split\nraw/x.png,cat,train\nraw/y.png,,\nraw/z.png,,unlabelled\n")

    listing = read_manifest(manifest)

    assert listing.classes == ["cat"]
    assert [(i.relative_path, i.label, i.split) for i in listing.images] == [
        ("cat/x.png", "cat", "train"),
        ("unlabelled/y.png", "", "unlabelled"),
        ("unlabelled/z.png", "", "unlabelled"),
    ]


def test_manifest_places_images_under_their_label(tmp_path):
    write_png(tmp_path / "raw" / "x.png", 1)
    write_png(tmp_path / "raw" / "y.png", 2)
    manifest = tmp_path / "list.csv"
    manifest.write_text(f"path,label,split\nraw/y.png,dog,test\n{tmp_path / 'raw' / 'x.png'},cat,\n")

    listing = read_manifest(manifest)

    assert listing.classes == ["cat", "dog"]
    assert [(i.relative_path, i.label, i.split) for i in listing.images] == [
        ("cat/x.png", "cat", None),
        ("dog/y.png", "dog", "test"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("file,label\na.png,cat\n", r"missing column\(s\) path"),
        ("path,label\nmissing.png,cat\n", r"1 listed file\(s\) not found, e\.g\. line 2: missing\.png"),
        ("path,label\nraw/x.png,../up\n", r"line 2: label '\.\./up' cannot be a class folder name"),
        ("path,label,split\nraw/x.png,cat,holdout\n", r"line 2: split 'holdout' is not one of train, val, test"),
        (
            "path,label\nraw/x.png,cat\nother/x.png,cat\n",
            r"line 3: other/x\.png lands on images/cat/x\.png, like line 2",
        ),
        ("path,label\n", "lists no images"),
        ("path,label\nraw/x.png,unlabelled\n", r"line 2: label 'unlabelled' is reserved for images without a label"),
        (
            "path,label,split\nother/x.png,cat,train\nraw/x.png,,test\n",
            r"line 3: split 'test' given to an unlabelled image \(empty label\)",
        ),
        ("path,label,split\nraw/x.png,cat,unlabelled\n", r"line 2: split 'unlabelled' is not one of train, val, test"),
        (
            "path,label\nother/x.png,cat\nraw/x.png,\nother/x.png,\n",
            r"line 4: other/x\.png lands on images/unlabelled/x\.png, like line 3",
        ),
    ],
)
def test_manifest_errors_name_the_file_and_line(tmp_path, content, message):
    write_png(tmp_path / "raw" / "x.png", 1)
    write_png(tmp_path / "other" / "x.png", 2)
    manifest = tmp_path / "list.csv"
    manifest.write_text(content)
    with pytest.raises(DataSourceError, match=message) as error:
        read_manifest(manifest)
    assert str(manifest) in str(error.value)


def test_archive_wrapper_folder_is_skipped_but_a_single_class_is_not(tmp_path):
    wrapped = tar_gz_of(make_image_folder(tmp_path / "d", {"a": 1, "b": 1}), tmp_path / "w.tar.gz", wrapper="usps")
    assert list_source(wrapped, tmp_path / "u1").classes == ["a", "b"]

    single = tar_gz_of(make_image_folder(tmp_path / "s", {"only": 2}), tmp_path / "s.tar.gz")
    assert list_source(single, tmp_path / "u2").classes == ["only"]


def test_zip_archive_of_a_folder(tmp_path):
    root = make_image_folder(tmp_path / "d", {"a": 2})
    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for file in root.rglob("*.png"):
            handle.write(file, file.relative_to(root).as_posix())
    assert [i.relative_path for i in list_source(archive, tmp_path / "u").images] == ["a/00.png", "a/01.png"]


def test_archive_holding_a_manifest(tmp_path):
    write_png(tmp_path / "pack" / "pics" / "x.png", 1)
    (tmp_path / "pack" / "labels.csv").write_text("path,label\npics/x.png,cat\n")
    archive = tar_gz_of(tmp_path / "pack", tmp_path / "pack.tar.gz", wrapper="pack")
    listing = list_source(archive, tmp_path / "u")
    assert [(i.relative_path, i.label) for i in listing.images] == [("cat/x.png", "cat")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.tar.gz", b"this is not an archive", "not a valid tar or zip archive"),
        ("notes.txt", b"hello", "unsupported source format"),
    ],
)
def test_unreadable_sources_are_named(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataSourceError, match=message) as error:
        list_source(path, tmp_path / "u")
    assert name in str(error.value)


def test_truncated_archive_cannot_be_unpacked(tmp_path):
    archive = tar_gz_of(make_image_folder(tmp_path / "d", {"a": 6}, size=64), tmp_path / "d.tar.gz")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataSourceError, match="cannot unpack the archive"):
        list_source(archive, tmp_path / "u")


def test_fetch_checks_existence_scheme_and_sha256(tmp_path):
    file = tmp_path / "list.csv"
    file.write_text("path,label\n")
    digest = hashlib.sha256(file.read_bytes()).hexdigest()

    assert fetch_source(file, tmp_path / "dl", sha256=digest.upper()) == file.resolve()
    with pytest.raises(DataSourceError, match="sha256 mismatch"):
        fetch_source(file, tmp_path / "dl", sha256="0" * 64)
    with pytest.raises(DataSourceError, match="no such file or folder"):
        fetch_source(tmp_path / "absent", tmp_path / "dl")
    with pytest.raises(DataSourceError, match="unsupported URL scheme"):
        fetch_source("ftp://example.invalid/x.tar.gz", tmp_path / "dl")
    with pytest.raises(DataSourceError, match="not a folder"):
        fetch_source(tmp_path, tmp_path / "dl", sha256=digest)


def test_url_download_and_its_failures(tmp_path, serve_folder):
    served = tmp_path / "served"
    served.mkdir()
    (served / "list.csv").write_text("path,label\n")
    base = serve_folder(served)

    fetched = fetch_source(f"{base}/list.csv", tmp_path / "dl")
    assert fetched.read_text() == "path,label\n"
    with pytest.raises(DataSourceError, match=r"/missing\.tar\.gz: download failed: HTTP Error 404"):
        fetch_source(f"{base}/missing.tar.gz", tmp_path / "dl")


def test_list_source_reports_the_source_as_given(tmp_path):
    path = tmp_path / "broken.zip"
    path.write_bytes(b"PK no")
    with pytest.raises(DataSourceError, match="https://example.test/broken.zip"):
        list_source(path, tmp_path / "u", source="https://example.test/broken.zip")


def test_manifest_column_names_tolerate_spaces(tmp_path):
    write_png(tmp_path / "x.png", 3)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path , label\nx.png,cat\n")
    assert read_manifest(manifest).images[0].file == Path(tmp_path / "x.png").resolve()
