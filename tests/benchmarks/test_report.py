"""Benchmark report: statistics over seeds, paired margins, time ratios, markdown."""

from __future__ import annotations

import pytest

from benchmarks.report import mean_std, summarise


def _cell(method: str, seed: int, accuracy: float, seconds: float) -> dict:
    return {
        "task": "a->b",
        "budget": "low",
        "method": method,
        "seed": seed,
        "labelled_images": 50,
        "accuracy": {"student": accuracy},
        "wall_seconds": seconds,
        "images_per_second": 100.0,
    }


def test_mean_and_sample_std() -> None:
    stat = mean_std([0.5, 0.7, 0.9])
    assert stat["mean"] == pytest.approx(0.7) and stat["std"] == pytest.approx(0.2) and stat["n"] == 3
    assert mean_std([]) == {"mean": None, "std": None, "n": 0}


def test_margins_are_paired_by_seed_and_time_ratios_use_mean_wall_time() -> None:
    cells = [
        _cell("4ds", 0, 0.60, 30), _cell("4ds", 1, 0.80, 30),
        _cell("kd", 0, 0.50, 10), _cell("kd", 1, 0.85, 20),
        _cell("student_scratch", 0, 0.40, 5), _cell("student_scratch", 1, 0.70, 5),
        _cell("two_stage", 0, 0.70, 60), _cell("two_stage", 1, 0.90, 60),
    ]
    teachers = {"a->b": {"target_test_accuracy": 0.3}}
    (entry,) = summarise(cells, teachers, ["a->b"], ["low"], ["student_scratch", "kd", "two_stage", "4ds"])
    kd = entry["margins_4ds"]["kd"]
    assert kd["mean"] == pytest.approx((0.10 - 0.05) / 2)
    assert kd["wins"] == 1 and kd["n"] == 2
    assert entry["margins_4ds"]["two_stage"]["wins"] == 0
    assert entry["margins_4ds"]["student_scratch"]["mean"] == pytest.approx(0.15)
    assert entry["wall_ratio_4ds_over"]["kd"] == pytest.approx(2.0)
    assert entry["wall_ratio_4ds_over"]["two_stage"] == pytest.approx(0.5)
    assert entry["teacher_source_only"] == 0.3
