"""The validation-only study runner (benchmarks.investigate) on the smoke suite: the adapter study's options.

Checks the runner and its records, not accuracy (a few training steps).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import investigate
from benchmarks.textured_digits import blend_digit, render_textured_digits


def test_semi_supervised_study_with_a_fixed_validation_draw_and_test_scores(tmp_path: Path) -> None:
    variants = ["4ds, bn affine + im 1", "two_stage"]
    arguments = ["--suite", "smoke", "--tasks", "demo-source-demo-target", "--seeds", "0", "--budgets", "low", "--semi-supervised",
                 "--validation-per-class", "2", "--report-test", "--variants", *variants,
                 "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"), "--name", "study"]
    assert investigate.main(arguments) == 0
    results = json.loads((tmp_path / "out" / "study.json").read_text())
    assert results["semi_supervised"] is True and "the test split is scored too" in results["validation"]
    runs = {run["variant"]: run for run in results["runs"]}
    assert set(runs) == set(variants)
    classes = 10  # the demo domains
    for run in runs.values():
        assert run["evaluated_images"] == 2 * classes  # the fixed validation draw
        assert run["unlabelled_images"] > 0
        assert set(run["test_accuracy"]) >= {"student"}
    # The smoke suite's demo target: 75 of its 100 images fall in the training split (content hash); 2 per
    # class validate, the label budget (20%, at least 2 per class) labels 2 per class of the rest, and the
    # remaining 75 - 20 - 20 = 35 are unlabelled: no image is in two of these groups.
    assert runs["two_stage"]["trained_on_images"] == 2 * classes
    assert runs["two_stage"]["unlabelled_images"] == 75 - 2 * classes - 2 * classes
    # The smoke teacher is a ResNet-18 (11.2 M parameters): its adapters plus BatchNorm scale and shift.
    assert 0.005 < runs["4ds, bn affine + im 1"]["adapter_share"] < 0.05
    assert runs["two_stage"]["adapter_share"] is None
    markdown = (tmp_path / "out" / "study.md").read_text()
    assert "| 4ds, bn affine + im 1 |" in markdown and "test: student" in markdown

    # Resumable: a second call trains nothing and writes the same runs.
    assert investigate.main(arguments) == 0
    again = json.loads((tmp_path / "out" / "study.json").read_text())
    assert [run["key"] for run in again["runs"]] == [run["key"] for run in results["runs"]]


def test_textured_digits_blend_and_render_deterministically(tmp_path: Path) -> None:
    digit_file = tmp_path / "digit.png"
    Image.fromarray(np.full((28, 28), 200, dtype=np.uint8), mode="L").save(digit_file)
    background = np.full((32, 32, 3), (10, 120, 250), dtype=np.int16)
    assert blend_digit(digit_file, background).getpixel((5, 5)) == (190, 80, 50)  # |background - digit|

    mnist, photos = tmp_path / "mnist", tmp_path / "photo"
    for digit in ("0", "1"):
        (mnist / "test" / digit).mkdir(parents=True)
        for index in range(3):
            Image.fromarray(np.eye(28, dtype=np.uint8) * 255 * (index + 1) // 3, mode="L").save(
                mnist / "test" / digit / f"{index:05d}.png")
    (photos / "dog").mkdir(parents=True)
    Image.fromarray(np.arange(128 * 128 * 3, dtype=np.uint32).reshape(128, 128, 3).astype(np.uint8)).save(
        photos / "dog" / "a.jpg")
    first = render_textured_digits(mnist, photos, tmp_path / "one", train_per_class=2, test_per_class=1)
    second = render_textured_digits(mnist, photos, tmp_path / "two", train_per_class=2, test_per_class=1)
    files = sorted(path.relative_to(first) for path in first.rglob("*.png"))
    assert [str(path) for path in files] == ["test/0/00002.png", "test/1/00002.png", "train/0/00000.png",
                                              "train/0/00001.png", "train/1/00000.png", "train/1/00001.png"]
    assert all((first / path).read_bytes() == (second / path).read_bytes() for path in files)


def test_the_adapter_probe_trains_only_what_it_says(tmp_path: Path, capsys) -> None:
    from benchmarks import adapter_probe

    common = ["--suite", "smoke", "--task", "demo-source->demo-target", "--steps", "2", "--validation-per-class", "2",
              "--work", str(tmp_path)]
    assert adapter_probe.main([*common, "--probe", '{"adapter_bn_affine": true, "adapter_initial_mix": 0.01}']) == 0
    assert adapter_probe.main([*common, "--probe", '{"full_finetune": true}']) == 0
    adapters, finetune = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert 0.005 < adapters["trained_share"] < 0.05 and finetune["trained_share"] == 1.0
    assert 0.0 <= adapters["val_accuracy"] <= 1.0 and adapters["steps"] == 2
