"""The benchmark runner end to end on generated demo domains (the smoke suite): runs, reports, resumes.

This checks the runner and its report, not accuracy: the smoke suite trains for a
few steps only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
METHODS = {"student_scratch", "kd", "two_stage", "4ds", "4ds+guard"}


def _run_smoke(work: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "2"}
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--suite", "smoke", "--work", str(work), "--out", str(out), *extra],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("work")
    out = tmp_path_factory.mktemp("results")
    first = _run_smoke(work, out, "--jobs", "2")  # one worker process per task
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    results = json.loads((out / "smoke.json").read_text())
    return {"work": work, "out": out, "first": first, "results": results}


@pytest.mark.slow
def test_every_cell_is_recorded_with_its_measurements(smoke_run: dict) -> None:
    results = smoke_run["results"]
    assert results["partial"] is False
    assert results["cells_done"] == results["cells_expected"] == 2 * 2 * 2 * 5
    assert results["worker_processes"] == 2
    assert smoke_run["first"].stdout.count("worker for ") == 2
    cells = results["cells"]
    assert {cell["method"] for cell in cells} == METHODS
    assert {cell["budget"] for cell in cells} == {"low", "medium"}
    assert {cell["task"] for cell in cells} == {"demo-source->demo-target", "demo-target->demo-source"}
    assert {cell["seed"] for cell in cells} == {0, 1}
    for cell in cells:
        assert 0.0 <= cell["accuracy"]["student"] <= 1.0
        assert cell["wall_seconds"] > 0 and cell["images_per_second"] > 0
        # same step budget for every student method
        assert cell["student_steps"] == results["settings"]["schedule"]["student_steps"]
    fourds_cells = [cell for cell in cells if cell["method"] == "4ds"]
    assert all("adapted_teacher" in cell["accuracy"] for cell in fourds_cells)
    two_stage = [cell for cell in cells if cell["method"] == "two_stage"]
    assert all(cell["finetune_steps"] == results["settings"]["schedule"]["finetune_steps"] for cell in two_stage)
    assert all(set(cell["stage_seconds"]) == {"finetune_teacher", "distill"} for cell in two_stage)
    # The guarded cells train on three quarters of the same labels and judge on the held-out rest.
    guarded = [cell for cell in cells if cell["method"] == "4ds+guard"]
    plain = {(cell["task"], cell["budget"], cell["seed"]): cell for cell in fourds_cells}
    for cell in guarded:
        assert set(cell["stage_seconds"]) == {"distill", "scratch_guard"}
        assert cell["labelled_images"] == plain[(cell["task"], cell["budget"], cell["seed"])]["labelled_images"]
        assert cell["trained_on_images"] + cell["guard"]["val_images"] == cell["labelled_images"]
        assert cell["guard"]["decision"] in ("distilled", "scratch")
        kept_scratch = cell["guard"]["decision"] == "scratch"
        assert ("distilled_student" in cell["accuracy"]) == kept_scratch
        assert kept_scratch == (cell["guard"]["scratch_val_accuracy"] > cell["guard"]["distilled_val_accuracy"])
    assert all(cell["guard"] is None for cell in cells if cell["method"] != "4ds+guard")


@pytest.mark.slow
def test_provenance_teacher_and_deployment_are_in_the_json(smoke_run: dict) -> None:
    results = smoke_run["results"]
    assert results["command"].endswith(
        "--suite smoke --work {} --out {} --jobs 2".format(smoke_run["work"], smoke_run["out"])
    )
    # Each cell records the command of the worker that computed it.
    assert {cell["command"].split(" --tasks ")[1] for cell in results["cells"]} == {
        "demo-source-demo-target --jobs 1 --no-report", "demo-target-demo-source --jobs 1 --no-report"}
    assert len(results["git"]["commit"]) == 40
    assert results["machine"]["logical_cores"] >= 1 and results["machine"]["torch"]
    assert len(results["load_average"]["start"]) == 3
    assert all(len(domain["content_sha256"]) == 64 for domain in results["domains"])
    assert len(results["teachers"]) == 2
    teacher = results["teachers"][0]
    assert 0.0 <= teacher["target_test_accuracy"] <= 1.0
    assert len(results["deployment"]) == 2
    deployment = results["deployment"][0]
    assert deployment["parameters"]["student"] > 0
    assert deployment["parity_max_abs_diff"]["student"] < 1e-3
    assert set(deployment["latency_ms"]) == {"onnx_student", "torch_student", "onnx_teacher", "torch_teacher"}
    assert set(deployment["latency_ms"]["onnx_student"]) == {"1", "64"}
    (summary_low, summary_medium) = results["summary"][:2]
    assert summary_low["budget"] == "low" and summary_medium["budget"] == "medium"
    assert set(summary_low["margins_4ds"]) == {"student_scratch", "kd", "two_stage"}
    assert summary_low["margins_4ds"]["kd"]["n"] == 2
    assert summary_low["wall_ratio_4ds_over"]["kd"] > 0
    assert summary_low["guard"]["minus_student_scratch"]["n"] == 2
    assert 0 <= summary_low["guard"]["kept_scratch"] <= 2


@pytest.mark.slow
def test_markdown_table_and_plot_are_written(smoke_run: dict) -> None:
    out = smoke_run["out"]
    text = (out / "smoke.md").read_text()
    assert "| task | budget (labels) | teacher, source only | scratch | kd | two_stage | 4ds | 4ds + scratch guard |" in text
    assert "## Scratch guard" in text
    assert "4ds / kd" in text and "parity" in text
    assert smoke_run["results"]["command"] in text
    assert (out / "smoke.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_rerun_skips_finished_cells_and_reports_the_same_numbers(smoke_run: dict) -> None:
    second = _run_smoke(smoke_run["work"], smoke_run["out"])
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "running" not in second.stdout
    assert second.stdout.count("recorded earlier, skipped") == 40
    assert "cached" in second.stdout  # the teacher is not trained again
    again = json.loads((smoke_run["out"] / "smoke.json").read_text())
    assert again["cells"] == smoke_run["results"]["cells"]
    assert again["deployment"] == smoke_run["results"]["deployment"]


@pytest.mark.slow
def test_report_only_writes_results_without_training(smoke_run: dict, tmp_path: Path) -> None:
    finished = _run_smoke(smoke_run["work"], tmp_path, "--report-only")
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert "running" not in finished.stdout
    assert json.loads((tmp_path / "smoke.json").read_text())["cells"] == smoke_run["results"]["cells"]


def test_source_and_target_go_together() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--source", "somewhere"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 2
    assert "--source and --target go together" in finished.stderr


def test_tasks_are_selected_by_name_or_shell_safe_slug() -> None:
    from benchmarks.run import parse_arguments, select_suite

    suite, name = select_suite(parse_arguments(["--suite", "full", "--tasks", "usps-mnist", "mnist->usps"]))
    assert [task.name for task in suite.tasks] == ["usps->mnist", "mnist->usps"]
    assert name == "full"
    with pytest.raises(SystemExit, match="usps-mnist"):
        select_suite(parse_arguments(["--suite", "full", "--tasks", "mnist"]))


def test_budgets_are_selected_by_name_and_an_unknown_one_is_named() -> None:
    from benchmarks.run import parse_arguments, select_suite

    suite, _ = select_suite(parse_arguments(["--suite", "standard", "--budgets", "medium"]))
    assert [(budget.name, budget.fraction) for budget in suite.budgets] == [("medium", 0.10)]
    with pytest.raises(SystemExit, match=r"unknown budget\(s\) \['tiny'\]; the standard suite has low, medium"):
        select_suite(parse_arguments(["--suite", "standard", "--budgets", "tiny"]))


def test_custom_folders_make_a_task_named_after_them(tmp_path: Path) -> None:
    from benchmarks.run import parse_arguments, select_suite

    arguments = parse_arguments(["--suite", "quick", "--source", str(tmp_path / "cam_a"), "--target", str(tmp_path / "cam_b")])
    suite, name = select_suite(arguments)
    (task,) = suite.tasks
    assert task.name == "cam_a->cam_b" and name == "quick-cam-a-cam-b"
    assert task.source.archive is None and task.source.folder == str((tmp_path / "cam_a").resolve())


def test_tasks_are_dealt_round_robin_to_workers() -> None:
    from benchmarks.run import parse_arguments, task_groups

    assert task_groups(("a", "b", "c", "d"), 2) == [["a", "c"], ["b", "d"]]
    assert task_groups(("a", "b", "c"), 2) == [["a", "c"], ["b"]]
    assert task_groups(("a", "b"), 8) == [["a"], ["b"]]
    assert task_groups(("a",), 1) == [["a"]]
    with pytest.raises(SystemExit):
        parse_arguments(["--jobs", "0"])


@pytest.mark.slow
def test_semi_supervised_setting_gives_every_distiller_the_rest_of_the_training_split(tmp_path: Path) -> None:
    run = _run_smoke(
        tmp_path / "work", tmp_path / "out", "--semi-supervised", "--tasks", "demo-source-demo-target",
        "--seeds", "0", "--skip-deployment",
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "smoke-semi.json").read_text())
    assert results["settings"]["unlabelled_ratio"] == 1.0
    target_train = next(d for d in results["domains"] if d["name"] == "demo-target")["images"]["train"]
    monitoring = 2 * 10  # 2 per class, held out of the labelled and the unlabelled pools
    for cell in results["cells"]:
        if cell["method"] in ("kd", "two_stage", "4ds", "4ds+guard"):
            assert cell["unlabelled_images"] == target_train - cell["labelled_images"] - monitoring
        else:
            assert cell["unlabelled_images"] == 0  # scratch has no label-free term: never drawn
        if cell["method"] != "4ds+guard":  # the guard judges on its own held-out quarter instead
            assert cell["monitoring_images"] == monitoring and cell["trained_on_images"] == cell["labelled_images"]
            assert [step for step, _ in cell["validation_curves"]["student"]] == [1, 2]
    markdown = (tmp_path / "out" / "smoke-semi.md").read_text()
    assert "unlabelled)" in markdown and "Had the students stopped improving?" in markdown
    assert (tmp_path / "out" / "smoke-semi-curves.png").stat().st_size > 0
