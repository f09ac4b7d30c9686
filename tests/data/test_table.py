from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from fourds.data.table import (
    TABLE_COLUMNS,
    ImageTableError,
    describe_image,
    image_folder_table,
    labelled_subset,
    read_image_table,
    split_for,
    unlabelled_rows,
    write_image_table,
)

from .images import make_image_folder, write_png


def _digest(seed: object) -> str:
    return hashlib.sha256(str(seed).encode()).hexdigest()


def test_split_follows_the_content_hash_and_the_fractions():
    splits = pd.Series([split_for(_digest(n), 0.1, 0.2) for n in range(5000)]).value_counts(normalize=True)
    assert splits["test"] == pytest.approx(0.2, abs=0.02)
    assert splits["val"] == pytest.approx(0.1, abs=0.02)
    assert splits["train"] == pytest.approx(0.7, abs=0.02)
    assert split_for(_digest(7), 0.1, 0.2) == split_for(_digest(7), 0.1, 0.2)


def test_split_boundaries():
    # The first hex digit d puts a hash at about d/16: test below 0.2, val in [0.2, 0.3), then train.
    assert split_for("3" + "0" * 63, 0.1, 0.2) == "test"  # 0.1875
    assert split_for("4" + "0" * 63, 0.1, 0.2) == "val"  # 0.25
    assert split_for("5" + "0" * 63, 0.1, 0.2) == "train"  # 0.3125
    assert split_for("0" * 64, 0.0, 0.0) == "train"


def test_split_rejects_fractions_that_leave_nothing_to_train():
    with pytest.raises(ValueError, match="sum < 1"):
        split_for(_digest(1), 0.5, 0.5)


def test_describe_image_reports_decodability(tmp_path):
    png = write_png(tmp_path / "a.png", 1, size=20).read_bytes()
    assert describe_image(png) == {"width": 20, "height": 20, "mode": "L", "decodable": True}
    truncated = describe_image(png[: len(png) // 2])
    assert truncated["decodable"] is False and truncated["width"] == 20  # the header still reads
    assert describe_image(b"not an image") == {"width": 0, "height": 0, "mode": "", "decodable": False}


def test_table_round_trip_keeps_labels_as_strings(tmp_path):
    rows = [
        {
            "path": "0/a.png",
            "label": "0",
            "split": "train",
            "width": 16,
            "height": 16,
            "mode": "L",
            "bytes": 10,
            "sha256": _digest(1),
            "decodable": True,
        },
        {
            "path": "NA/b.png",
            "label": "NA",
            "split": "test",
            "width": 0,
            "height": 0,
            "mode": "",
            "bytes": 3,
            "sha256": _digest(2),
            "decodable": False,
        },
    ]
    path = tmp_path / "images.csv"
    assert write_image_table(iter(rows), path) == 2

    table = read_image_table(path)

    assert list(table.columns) == list(TABLE_COLUMNS)
    assert table["label"].tolist() == ["0", "NA"]
    assert table["mode"].tolist() == ["L", ""]
    assert table["decodable"].tolist() == [True, False]
    assert table["width"].tolist() == [16, 0]


def test_reading_a_bad_table_names_file_and_columns(tmp_path):
    with pytest.raises(ImageTableError, match="image table not found"):
        read_image_table(tmp_path / "absent.csv")
    partial = tmp_path / "partial.csv"
    partial.write_text("path,label\na.png,cat\n")
    with pytest.raises(ImageTableError, match=r"partial\.csv: missing column\(s\) split, width"):
        read_image_table(partial)


def test_image_folder_table_reads_a_folder_in_place(tmp_path):
    root = make_image_folder(tmp_path / "d", {"a": 3, "b": 2, "c": 0})
    table, classes = image_folder_table(root, progress=False)
    assert classes == ["a", "b", "c"]
    assert table["path"].tolist() == ["a/00.png", "a/01.png", "a/02.png", "b/00.png", "b/01.png"]
    assert table["sha256"].iloc[0] == hashlib.sha256((root / "a" / "00.png").read_bytes()).hexdigest()
    assert table["split"].tolist() == [split_for(digest, 0.1, 0.2) for digest in table["sha256"]]
    assert table["decodable"].all() and (table["width"] == 12).all()


def _balanced_table(per_class: dict[str, int]) -> pd.DataFrame:
    rows = []
    for label, count in per_class.items():
        for index in range(count):
            rows.append(
                {
                    "path": f"{label}/{index:03d}.png",
                    "label": label,
                    "split": "train",
                    "sha256": _digest(f"{label}{index}"),
                }
            )
    rows.append({"path": "a/test.png", "label": "a", "split": "test", "sha256": _digest(-1)})
    return pd.DataFrame(rows)


def test_fraction_budget_is_stratified_with_at_least_two_per_class():
    table = _balanced_table({"a": 40, "b": 10, "c": 3, "d": 1})
    subset = labelled_subset(table, 0.1, seed=0)
    assert subset["label"].value_counts().to_dict() == {"a": 4, "b": 2, "c": 2, "d": 1}
    assert (subset["split"] == "train").all()


def test_count_budget_takes_that_many_per_class():
    table = _balanced_table({"a": 40, "b": 10, "c": 3})
    assert labelled_subset(table, 5, seed=0)["label"].value_counts().to_dict() == {"a": 5, "b": 5, "c": 3}
    assert len(labelled_subset(table, None, seed=0)) == 53
    assert len(labelled_subset(table, None, seed=0, split="test")) == 1


def test_budget_subsets_depend_on_seed_not_on_row_order_and_are_nested():
    table = _balanced_table({"a": 50, "b": 50})
    first = labelled_subset(table, 5, seed=1)
    shuffled = labelled_subset(table.sample(frac=1, random_state=3), 5, seed=1)
    assert first["path"].tolist() == shuffled["path"].tolist()
    assert first["path"].tolist() != labelled_subset(table, 5, seed=2)["path"].tolist()
    larger = set(labelled_subset(table, 20, seed=1)["path"])
    assert set(first["path"]) <= larger


def test_adding_images_to_one_class_keeps_the_others_subset():
    table = _balanced_table({"a": 30, "b": 30})
    grown = pd.concat([table, _balanced_table({"a": 60}).iloc[30:60]], ignore_index=True)
    before = labelled_subset(table, 4, seed=0)
    after = labelled_subset(grown, 4, seed=0)
    assert before[before.label == "b"]["path"].tolist() == after[after.label == "b"]["path"].tolist()


@pytest.mark.parametrize("budget", [0, -3, 0.0, 1.5, True, "10"])
def test_invalid_budgets_are_refused(budget):
    with pytest.raises(ValueError, match="budget"):
        labelled_subset(_balanced_table({"a": 3}), budget, seed=0)


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="'holdout' is not one of"):
        labelled_subset(_balanced_table({"a": 3}), None, seed=0, split="holdout")


def test_labelled_subsets_never_pick_unlabelled_images():
    table = _balanced_table({"a": 5})
    unlabelled = pd.DataFrame(
        [{"path": f"unlabelled/{n}.png", "label": "", "split": "unlabelled", "sha256": _digest(f"u{n}")}
         for n in range(8)]
    )
    grown = pd.concat([table, unlabelled], ignore_index=True)

    for split in ("train", "val", "test"):
        with_unlabelled = labelled_subset(grown, None, seed=0, split=split)
        assert with_unlabelled.equals(labelled_subset(table, None, seed=0, split=split))
    assert labelled_subset(grown, 1.0, seed=0).equals(labelled_subset(table, 1.0, seed=0))
    assert unlabelled_rows(grown)["path"].tolist() == unlabelled["path"].tolist()
    with pytest.raises(ValueError, match="'unlabelled' is not one of train, val, test"):
        labelled_subset(grown, None, seed=0, split="unlabelled")
