"""The Great Expectations suite, run for real on tiny generated domains."""

from __future__ import annotations

import json
import shutil

import pytest

from fourds.config import ValidationConfig
from fourds.data.ingest import ingest_domain
from fourds.data.table import ImageTableError, image_folder_table
from fourds.data.validation import DataValidationError, validate_domain, validate_table

from .images import add_unlabelled, make_image_folder, write_png

CLASSES = ["cat", "dog", "fox"]
LENIENT = ValidationConfig(min_images_per_class=1)


def _validate(folder, report_dir, *, classes=CLASSES, config=LENIENT):
    """The suite on a folder read in place, with its class folders (empty ones included)."""
    table, domain_classes = image_folder_table(folder, progress=False)
    return validate_table(table, folder, classes, config, report_dir, domain_classes=domain_classes)


def _failure(report, description_start):
    matches = [failure for failure in report.failures if failure.description.startswith(description_start)]
    assert matches, f"no failure starting {description_start!r} in {[f.description for f in report.failures]}"
    return matches[0]


def test_clean_domain_passes_and_writes_both_reports(image_folder, workspace, tmp_path):
    ingested = ingest_domain(image_folder, "pets", workspace, progress=False)

    report = validate_domain(ingested.domain_dir, CLASSES, ValidationConfig(), tmp_path / "report")

    assert report.success, report.failures
    report.raise_for_failure()  # does nothing on success
    results = json.loads(report.results_json.read_text())
    assert results["success"] is True
    assert results["statistics"]["evaluated_expectations"] == 14
    assert set(results["validations"]) == {"images", "class_counts", "content_splits"}
    index = report.html_report.read_text()
    assert report.html_report.name == "index.html" and "<html" in index.lower()
    pages = list((report.html_report.parent / "validations").rglob("*.html"))
    assert len(pages) == 3 and "Data validation <b>passed</b>" in index
    images_page = next(page for page in pages if page.parent.parent.parent.name == "images")
    assert "every label is in the teacher&#39;s class list" in images_page.read_text() or (
        "every label is in the teacher's class list" in images_page.read_text()
    )


def test_the_data_docs_read_offline(image_folder, tmp_path):
    """No stylesheet or script from a CDN; a static index that links every check's pages and names failures."""
    import re

    (image_folder / "dog" / "03.png").write_bytes(b"not a png")
    report = _validate(image_folder, tmp_path / "report")
    site = report.html_report.parent

    for page in site.rglob("*.html"):
        text = page.read_text()
        assert not re.search(r"<(script|link)\b[^>]*(src|href)=[\"']https?://", text), page
        stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+fourds_offline.css)">', text)
        assert stylesheet and (page.parent / stylesheet.group(1)).is_file(), page
    index = report.html_report.read_text()
    assert "Data validation <b>FAILED</b>" in index and "<code>dog/03.png</code>" in index
    links = re.findall(r'href="((?:validations|expectations)/[^"]+)"', index)
    assert len(links) == 6 and all((site / link).is_file() for link in links)
    assert "<script" not in index


def test_corrupt_png_fails_naming_the_file(image_folder, tmp_path):
    (image_folder / "dog" / "03.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    report = _validate(image_folder, tmp_path / "report")
    assert not report.success
    failure = _failure(report, "every file decodes")
    assert failure.examples == ["dog/03.png"] and failure.column == "decodable"
    with pytest.raises(DataValidationError) as error:
        report.raise_for_failure()
    assert "every file decodes as an image" in str(error.value) and "dog/03.png" in str(error.value)
    assert error.value.report is report
    assert "dog/03.png" in report.results_json.read_text()


def test_unknown_label_fails_naming_the_files(image_folder, tmp_path):
    report = _validate(image_folder, tmp_path / "report", classes=["cat", "dog"])
    failure = _failure(report, "every label is in the teacher's class list")
    assert failure.examples == [f"fox/{index:02d}.png" for index in range(5)]
    assert failure.unexpected_count == 8
    assert [f.description for f in report.failures] == [failure.description]


def test_empty_class_fails_naming_the_class(image_folder, tmp_path):
    (image_folder / "owl").mkdir()
    report = _validate(image_folder, tmp_path / "report", classes=[*CLASSES, "owl"])
    assert _failure(report, "no class is empty").examples == ["class 'owl'"]


def test_same_image_in_train_and_test_fails_naming_both_files(image_folder, workspace, tmp_path):
    shutil.copy(image_folder / "cat" / "00.png", tmp_path / "copy.png")
    manifest = tmp_path / "list.csv"
    rows = [f"source/{label}/{index:02d}.png,{label},train" for label in CLASSES for index in range(8)]
    manifest.write_text("path,label,split\n" + "\n".join(rows) + "\ncopy.png,cat,test\n")
    ingested = ingest_domain(manifest, "leaky", workspace, progress=False)

    report = validate_domain(ingested.domain_dir, CLASSES, LENIENT, tmp_path / "report")

    failure = _failure(report, "no identical image content in two splits")
    assert failure.examples == ["cat/00.png | cat/copy.png"]
    assert len(report.failures) == 1


@pytest.mark.parametrize("held_out", ["test", "val"])
def test_unlabelled_copy_of_a_held_out_image_fails_naming_the_file(image_folder, tmp_path, held_out):
    """Unlabelled images are trained on: a copy of a test image leaks the test split, one of a val image biases
    what validation selects (the scratch guard's student, best_val weights). A copy of a train image is fine."""
    table, _ = image_folder_table(image_folder, progress=False)
    held_out_image = table.loc[table["split"] == held_out, "path"].iloc[0]
    train_image = table.loc[table["split"] == "train", "path"].iloc[0]
    add_unlabelled(image_folder, 3)
    shutil.copy(image_folder / held_out_image, image_folder / "unlabelled" / "copy_of_held_out.png")
    shutil.copy(image_folder / train_image, image_folder / "unlabelled" / "copy_of_train.png")  # allowed

    report = _validate(image_folder, tmp_path / "report")

    failure = _failure(report, "no unlabelled image has the content of a validation or test image")
    assert failure.examples == [f"{held_out_image} | unlabelled/copy_of_held_out.png"]
    assert len(report.failures) == 1
    with pytest.raises(DataValidationError, match="unlabelled/copy_of_held_out.png"):
        report.raise_for_failure()


def test_corrupt_unlabelled_image_fails_naming_the_file(image_folder, tmp_path):
    add_unlabelled(image_folder, 3)
    (image_folder / "unlabelled" / "u01.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")

    report = _validate(image_folder, tmp_path / "report")

    assert _failure(report, "every file decodes").examples == ["unlabelled/u01.png"]
    assert len(report.failures) == 1


def test_unlabelled_images_meet_mode_and_size_bounds_but_no_label_or_class_checks(tmp_path):
    folder = add_unlabelled(make_image_folder(tmp_path / "d", {"cat": 5, "dog": 5}), 40)
    strict = ValidationConfig(min_images_per_class=5, max_class_imbalance=1.0, allowed_modes=["L"], max_side=32)

    clean = _validate(folder, tmp_path / "clean", classes=["cat", "dog"], config=strict)
    assert clean.success, clean.failures  # 40 unlabelled images: no class, no label, no imbalance

    write_png(folder / "unlabelled" / "big.png", 5, size=40, mode="RGB")
    report = _validate(folder, tmp_path / "report", classes=["cat", "dog"], config=strict)
    assert _failure(report, "image mode is one of L").examples == ["unlabelled/big.png"]
    assert _failure(report, "width within [8, 32]").examples == ["unlabelled/big.png"]
    assert len(report.failures) == 3  # mode, width, height


def test_a_labelled_row_without_a_label_fails(image_folder, tmp_path):
    table, domain_classes = image_folder_table(image_folder, progress=False)
    table.loc[0, "label"] = ""  # only an unlabelled image may have no label
    report = validate_table(table, image_folder, CLASSES, LENIENT, tmp_path / "report", domain_classes=domain_classes)
    assert _failure(report, "every label is in the teacher's class list").examples == [table.loc[0, "path"]]


def test_empty_domain_fails(tmp_path):
    table, _ = image_folder_table(make_image_folder(tmp_path / "d", {"cat": 1}), progress=False)
    report = validate_table(table.iloc[0:0], tmp_path / "d", CLASSES, LENIENT, tmp_path / "report")
    assert _failure(report, "the domain has at least one image").expectation == "expect_table_row_count_to_be_between"
    assert "observed: 0" in _failure(report, "the domain has at least one image").description


def test_class_size_and_balance_bounds(tmp_path):
    folder = make_image_folder(tmp_path / "d", {"cat": 30, "dog": 3})
    report = _validate(
        folder,
        tmp_path / "report",
        classes=["cat", "dog"],
        config=ValidationConfig(min_images_per_class=5, max_class_imbalance=5),
    )
    assert _failure(report, "every class has at least 5 images").examples == ["class 'dog'"]
    balance = _failure(report, "class balance")
    assert "at least 6 images" in balance.description and balance.examples == ["class 'dog'"]


def test_mode_and_size_bounds(tmp_path):
    folder = make_image_folder(tmp_path / "d", {"cat": 2})
    write_png(folder / "cat" / "big.png", 5, size=40, mode="RGB")
    report = _validate(
        folder,
        tmp_path / "report",
        classes=["cat"],
        config=ValidationConfig(min_images_per_class=1, allowed_modes=["L"], max_side=32),
    )
    assert _failure(report, "image mode is one of L").examples == ["cat/big.png"]
    assert _failure(report, "width within [8, 32]").examples == ["cat/big.png"]
    assert _failure(report, "height within [8, 32]").examples == ["cat/big.png"]


def test_missing_file_fails(image_folder, tmp_path):
    table, domain_classes = image_folder_table(image_folder, progress=False)
    (image_folder / "cat" / "02.png").unlink()
    report = validate_table(table, image_folder, CLASSES, LENIENT, tmp_path / "report", domain_classes=domain_classes)
    assert _failure(report, "every listed file exists").examples == ["cat/02.png"]


def test_table_without_required_columns_is_refused(image_folder, tmp_path):
    table, _ = image_folder_table(image_folder, progress=False)
    with pytest.raises(ImageTableError, match="missing column"):
        validate_table(table.drop(columns="sha256"), image_folder, CLASSES, LENIENT, tmp_path / "report")


def test_report_folder_is_replaced_on_a_second_run(image_folder, tmp_path):
    (image_folder / "cat" / "00.png").write_bytes(b"broken")
    assert not _validate(image_folder, tmp_path / "report").success
    write_png(image_folder / "cat" / "00.png", 4321)
    second = _validate(image_folder, tmp_path / "report")
    assert second.success
    assert len(list((second.html_report.parent / "validations").rglob("*.html"))) == 3
