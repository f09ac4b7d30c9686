"""Ingest on the real local stack: DVC (no mocks), a loopback HTTP server, USPS when present."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import zipfile

import pytest

from fourds.data.ingest import DataSourceError, ingest_domain
from fourds.data.table import image_folder_table, read_image_table
from fourds.data.versioning import recorded_data_md5

from .images import add_unlabelled, make_image_folder, tar_gz_of, write_png

# The image_folder fixture (24 labelled images) as ingested before unlabelled images
# existed (commit 030d475): a domain without them must keep exactly this table and md5.
PINNED_TABLE_SHA256 = "1f2b8dcea2e00e85722b09ba8eb79e5a7a34faa0b54162edfdf2ef10ac0e4596"
PINNED_DOMAIN_MD5 = "d5d6d2e2d2c919d42f967e286a868db5.dir"


def _manifest_of(folder, manifest):
    """A path,label manifest listing ``folder``'s images (relative to the manifest, shuffled order)."""
    files = sorted(folder.rglob("*.png"), reverse=True)
    lines = [f"{file.relative_to(manifest.parent).as_posix()},{file.parent.name}" for file in files]
    manifest.write_text("path,label\n" + "\n".join(lines) + "\n")
    return manifest


def test_folder_manifest_and_archives_give_the_same_table_and_md5(tmp_path, image_folder, workspace):
    manifest = _manifest_of(image_folder, tmp_path / "list.csv")
    archive = tar_gz_of(image_folder, tmp_path / "domain.tar.gz", wrapper="domain")
    zipped = tmp_path / "domain.zip"
    with zipfile.ZipFile(zipped, "w") as handle:
        for file in image_folder.rglob("*.png"):
            handle.write(file, file.relative_to(image_folder).as_posix())

    results = [
        ingest_domain(source, name, workspace, progress=False)
        for source, name in [(image_folder, "folder"), (manifest, "manifest"), (archive, "tgz"), (zipped, "zip")]
    ]

    tables = {result.table_path.read_bytes() for result in results}
    assert len(tables) == 1
    assert {result.domain_md5 for result in results} == {results[0].domain_md5}
    assert results[0].domain_md5.endswith(".dir")
    assert results[-1].data_md5 == recorded_data_md5(workspace)
    assert results[0].num_images == 24 and results[0].classes == ["cat", "dog", "fox"]
    assert sum(results[0].split_counts.values()) == 24


def test_a_domain_without_unlabelled_images_keeps_its_table_and_md5(image_folder, workspace):
    result = ingest_domain(image_folder, "pets", workspace, progress=False)

    assert hashlib.sha256(result.table_path.read_bytes()).hexdigest() == PINNED_TABLE_SHA256
    assert result.domain_md5 == PINNED_DOMAIN_MD5
    assert result.unlabelled_images == 0 and not (result.images_dir / "unlabelled").exists()


def test_unlabelled_images_from_a_folder_a_manifest_and_an_archive(tmp_path, image_folder, workspace):
    labelled_only = read_image_table(ingest_domain(image_folder, "before", workspace, progress=False).table_path)
    add_unlabelled(image_folder, 12)
    manifest = _manifest_of(image_folder, tmp_path / "list.csv")  # unlabelled/ rows get an empty label
    manifest.write_text(manifest.read_text().replace(",unlabelled\n", ",\n"))
    archive = tar_gz_of(image_folder, tmp_path / "domain.tar.gz", wrapper="domain")

    results = [
        ingest_domain(source, name, workspace, progress=False)
        for source, name in [(image_folder, "folder"), (manifest, "manifest"), (archive, "tgz")]
    ]

    assert len({result.table_path.read_bytes() for result in results}) == 1
    assert len({result.domain_md5 for result in results}) == 1
    folder = results[0]
    assert folder.num_images == 36 and folder.unlabelled_images == folder.split_counts["unlabelled"] == 12
    assert folder.classes == ["cat", "dog", "fox"]
    table = read_image_table(folder.table_path)
    unlabelled = table[table["path"].str.startswith("unlabelled/")]
    assert len(unlabelled) == 12
    assert set(unlabelled["split"]) == {"unlabelled"} and set(unlabelled["label"]) == {""}
    # Whatever their hash, no unlabelled image is in train/val/test; the labelled rows are unchanged.
    assert table.drop(unlabelled.index).reset_index(drop=True).equals(labelled_only)
    assert (folder.images_dir / "unlabelled" / "u03.png").read_bytes() == (
        image_folder / "unlabelled" / "u03.png"
    ).read_bytes()


def test_an_added_unlabelled_image_changes_the_md5(image_folder, workspace):
    add_unlabelled(image_folder, 2)
    first = ingest_domain(image_folder, "pets", workspace, progress=False)

    add_unlabelled(image_folder, 3)  # u02.png is new
    second = ingest_domain(image_folder, "pets", workspace, progress=False)

    assert second.unlabelled_images == 3
    assert second.domain_md5 != first.domain_md5 and second.data_md5 != first.data_md5
    assert second.data_md5 == recorded_data_md5(workspace)


def test_table_describes_each_copied_image(image_folder, workspace):
    result = ingest_domain(image_folder, "pets", workspace, progress=False)

    table = read_image_table(result.table_path)
    row = table.set_index("path").loc["dog/03.png"]
    original = (image_folder / "dog" / "03.png").read_bytes()
    assert (result.images_dir / "dog" / "03.png").read_bytes() == original
    assert row["sha256"] == hashlib.sha256(original).hexdigest()
    assert (row["label"], row["width"], row["height"], row["mode"], row["bytes"]) == ("dog", 12, 12, "L", len(original))
    assert bool(row["decodable"]) is True
    assert result.domain_dir == workspace.domain_dir("pets")
    assert json.loads((result.domain_dir / "classes.json").read_text()) == ["cat", "dog", "fox"]
    # The same table-building code reads a folder in place.
    in_place, _ = image_folder_table(image_folder, progress=False)
    assert in_place.equals(table)


def test_reingest_is_stable_and_one_changed_image_changes_the_md5(image_folder, workspace):
    first = ingest_domain(image_folder, "pets", workspace, progress=False)
    again = ingest_domain(image_folder, "pets", workspace, progress=False)
    assert (again.domain_md5, again.data_md5) == (first.domain_md5, first.data_md5)

    write_png(image_folder / "cat" / "00.png", 12345)
    changed = ingest_domain(image_folder, "pets", workspace, progress=False)
    assert changed.domain_md5 != first.domain_md5
    assert changed.data_md5 != first.data_md5


def test_adding_images_leaves_existing_splits_unchanged(image_folder, workspace):
    before = read_image_table(ingest_domain(image_folder, "pets", workspace, progress=False).table_path)
    make_image_folder(image_folder, {"cat": 0, "owl": 6}, first_seed=500)
    for index in range(8, 14):
        write_png(image_folder / "dog" / f"{index:02d}.png", 600 + index)

    after = read_image_table(ingest_domain(image_folder, "pets", workspace, progress=False).table_path)

    assert len(after) == len(before) + 12
    merged = before.merge(after, on="path", suffixes=("_before", "_after"))
    assert len(merged) == len(before)
    assert (merged["split_before"] == merged["split_after"]).all()


def test_a_second_domain_leaves_the_first_domain_md5_alone(tmp_path, image_folder, workspace):
    first = ingest_domain(image_folder, "pets", workspace, progress=False)
    other = make_image_folder(tmp_path / "other", {"x": 3}, first_seed=900)
    second = ingest_domain(other, "other", workspace, progress=False)
    from fourds.data.versioning import data_version

    assert data_version(workspace, "pets").domain_md5 == first.domain_md5
    assert second.data_md5 != first.data_md5


def test_failed_reingest_keeps_the_previous_version(tmp_path, image_folder, workspace):
    good = ingest_domain(image_folder, "pets", workspace, progress=False)
    broken_manifest = tmp_path / "broken.csv"
    broken_manifest.write_text("path,label\nsource/cat/00.png,cat\nsource/cat/absent.png,cat\n")

    with pytest.raises(DataSourceError, match=r"absent\.png"):
        ingest_domain(broken_manifest, "pets", workspace, progress=False)

    table = read_image_table(workspace.domain_dir("pets") / "images.csv")
    assert len(table) == 24
    assert recorded_data_md5(workspace) == good.data_md5
    assert [p.name for p in workspace.domains_dir.iterdir()] == ["pets"]  # no staging folder left behind


def test_manifest_splits_are_kept(tmp_path, workspace):
    write_png(tmp_path / "a.png", 1)
    write_png(tmp_path / "b.png", 2)
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label,split\na.png,cat,test\nb.png,cat,val\n")
    table = read_image_table(ingest_domain(manifest, "given", workspace, progress=False).table_path)
    assert table["split"].tolist() == ["test", "val"]


def test_url_source_with_sha256(tmp_path, image_folder, workspace, serve_folder):
    served = tmp_path / "served"
    served.mkdir()
    archive = tar_gz_of(image_folder, served / "pets.tar.gz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    url = f"{serve_folder(served)}/pets.tar.gz"

    result = ingest_domain(url, "pets", workspace, sha256=digest, progress=False)
    assert result.source == url and result.num_images == 24
    assert result.domain_md5 == ingest_domain(image_folder, "local", workspace, progress=False).domain_md5

    with pytest.raises(DataSourceError, match=rf"{url}: sha256 mismatch"):
        ingest_domain(url, "other", workspace, sha256="ab" * 32, progress=False)
    assert not workspace.domain_dir("other").exists()


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "x" * 101, "spaces here", "../up", "trailing\n"])
def test_invalid_domain_names_are_refused(image_folder, workspace, name):
    with pytest.raises(DataSourceError, match="invalid domain name"):
        ingest_domain(image_folder, name, workspace, progress=False)


def test_fractions_are_checked(image_folder, workspace):
    with pytest.raises(ValueError, match="sum < 1"):
        ingest_domain(image_folder, "pets", workspace, val_fraction=0.5, test_fraction=0.5, progress=False)


def test_progress_is_shown(image_folder, workspace, capfd):
    ingest_domain(image_folder, "pets", workspace, progress=True)
    assert "ingest pets" in capfd.readouterr().err


def test_corrupt_and_empty_class_are_ingested_for_validation_to_see(image_folder, workspace):
    (image_folder / "empty").mkdir()
    (image_folder / "cat" / "00.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = ingest_domain(image_folder, "pets", workspace, progress=False)
    table = read_image_table(result.table_path).set_index("path")
    assert bool(table.loc["cat/00.png", "decodable"]) is False
    assert result.classes == ["cat", "dog", "empty", "fox"]
    assert (result.images_dir / "empty").is_dir()


@pytest.mark.shared_data
def test_usps_subset_from_folder_and_tar_gz(shared_data, tmp_path, workspace):
    """A 30-per-class subset of USPS train, ingested as a folder and as a .tar.gz: same md5."""
    folder = tmp_path / "usps_train"
    taken: dict[str, int] = {}
    with tarfile.open(shared_data / "usps.tar.gz") as archive:
        for member in archive:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 4 or parts[1] != "train":
                continue
            label = parts[2]
            if taken.get(label, 0) >= 30:
                continue
            taken[label] = taken.get(label, 0) + 1
            target = folder / label / parts[3]
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.extractfile(member) as source, target.open("wb") as handle:
                shutil.copyfileobj(source, handle)
    assert sorted(taken) == [str(digit) for digit in range(10)]

    from_folder = ingest_domain(folder, "usps", workspace, progress=False)
    from_archive = ingest_domain(
        tar_gz_of(folder, tmp_path / "usps.tar.gz", wrapper="usps"), "usps_tgz", workspace, progress=False
    )

    assert from_folder.domain_md5 == from_archive.domain_md5
    table = read_image_table(from_folder.table_path)
    assert len(table) == 300 and table["decodable"].all()
    assert set(zip(table["width"], table["height"], table["mode"])) == {(16, 16, "L")}
