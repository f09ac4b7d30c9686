"""Benchmark domains: the two folder layouts, the label budget rule and the evaluation subset."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from benchmarks.domains import evaluation_rows, labelled_images, load_domain
from benchmarks.suites import BudgetSpec, DomainSpec


def _write_images(folder: Path, counts: dict[str, int], shade: int) -> None:
    for label, count in counts.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            Image.new("L", (8, 8), color=(shade + 7 * index) % 256).save(folder / label / f"{index:03d}.png")


def test_a_folder_with_train_and_test_keeps_that_split(tmp_path: Path) -> None:
    _write_images(tmp_path / "digits" / "train", {"0": 6, "1": 4}, shade=10)
    _write_images(tmp_path / "digits" / "test", {"0": 2, "1": 3}, shade=100)
    domain = load_domain(DomainSpec("digits", folder=str(tmp_path / "digits")), data_dir=tmp_path, work_dir=tmp_path / "work")
    assert domain.classes == ["0", "1"]
    assert domain.rows("train")["path"].str.startswith("train/").all()
    assert len(domain.rows("train")) == 10 and len(domain.rows("test")) == 5
    assert "given" in domain.split_rule


def test_a_plain_class_folder_is_split_by_content_hash_and_the_table_is_cached(tmp_path: Path) -> None:
    _write_images(tmp_path / "plain", {"a": 20, "b": 20}, shade=0)
    spec = DomainSpec("plain", folder=str(tmp_path / "plain"))
    first = load_domain(spec, data_dir=tmp_path, work_dir=tmp_path / "work")
    assert set(first.table["split"]) <= {"train", "test"} and (first.table["split"] == "test").any()
    assert len(list((tmp_path / "work" / "tables").glob("*.csv"))) == 1
    second = load_domain(spec, data_dir=tmp_path, work_dir=tmp_path / "work")
    pd.testing.assert_frame_equal(first.table, second.table)
    assert first.content_digest() == second.content_digest()


def _table(per_class: dict[str, int]) -> pd.DataFrame:
    rows = [
        {"path": f"{label}/{index}.png", "label": label, "split": "train", "sha256": f"{label}{index:060d}"}
        for label, count in per_class.items()
        for index in range(count)
    ]
    return pd.DataFrame(rows)


class _Domain:
    def __init__(self, table: pd.DataFrame):
        self.table = table

    def rows(self, split: str) -> pd.DataFrame:
        return self.table[self.table["split"] == split].reset_index(drop=True)


def test_label_budget_is_a_fraction_with_a_floor_per_class_and_depends_on_the_seed() -> None:
    domain = _Domain(_table({"big": 1000, "small": 100}))
    chosen = labelled_images(domain, BudgetSpec("low", 0.01, 5), seed=0)
    counts = chosen["label"].value_counts().to_dict()
    assert counts == {"big": 10, "small": 5}
    assert not chosen["path"].duplicated().any()
    other_seed = labelled_images(domain, BudgetSpec("low", 0.01, 5), seed=1)
    assert set(chosen["path"]) != set(other_seed["path"])
    larger = labelled_images(domain, BudgetSpec("medium", 0.1, 5), seed=0)
    assert set(chosen["path"]) <= set(larger["path"])


def test_evaluation_subset_is_fixed_and_stratified() -> None:
    table = _table({"a": 50, "b": 50}).assign(split="test")
    domain = _Domain(table)
    subset = evaluation_rows(domain, 10)
    assert subset["label"].value_counts().to_dict() == {"a": 10, "b": 10}
    assert subset.equals(evaluation_rows(domain, 10))
    assert len(evaluation_rows(domain, None)) == 100
