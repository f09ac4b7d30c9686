"""``fourds watch`` on real folders and real DVC hashes; the per-domain run is a recording function.

The pipeline itself runs through watch in tests/lineage/test_audit_e2e.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fourds.exit_codes import EXIT_LOCKED, EXIT_NOT_PROMOTED, EXIT_OK, EXIT_RUN_FAILED
from fourds.operations.watch import (
    RunSummary,
    WatchedDomain,
    WatchLocked,
    load_state,
    lock_path,
    plan_watch,
    run_watch,
    summarize,
    watch_lock,
)
from fourds.workspace import Workspace
from fourds_app.cli import main


def write_domain(folder: Path, *, seed: int, classes=("cat", "dog"), per_class: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    for label in classes:
        (folder / label).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / label / f"{index}.png")
    return folder


class RecordingRunner:
    """Stands in for the distill pipeline: records which domains it was asked to run."""

    def __init__(self, failing: tuple[str, ...] = ()):
        self.calls: list[str] = []
        self.failing = failing

    def __call__(self, domain: WatchedDomain) -> RunSummary:
        self.calls.append(domain.name)
        if domain.name in self.failing:
            raise RuntimeError(f"validation failed for {domain.name}")
        return RunSummary(run_name=f"distill-{domain.name}-{len(self.calls)}", model_version=str(len(self.calls)))


def one_pass(source: Path, workspace: Workspace, runner: RecordingRunner) -> int:
    with watch_lock(workspace):
        plan = plan_watch(source, workspace)
        return run_watch(plan, workspace, runner, echo=lambda line: None).exit_code


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    return Workspace(tmp_path / "workspace").ensure()


@pytest.fixture
def source(tmp_path) -> Path:
    folder = tmp_path / "domains"
    write_domain(folder / "sketches", seed=1)
    return folder


def test_new_domain_runs_then_unchanged_does_not(source, workspace):
    runner = RecordingRunner()

    assert one_pass(source, workspace, runner) == EXIT_OK
    assert runner.calls == ["sketches"]
    assert load_state(workspace)["sketches"]["run_name"] == "distill-sketches-1"

    assert one_pass(source, workspace, runner) == EXIT_OK
    assert runner.calls == ["sketches"], "unchanged data must not run again"


def test_one_changed_image_runs_again_and_a_new_domain_is_picked_up(source, workspace):
    runner = RecordingRunner()
    one_pass(source, workspace, runner)
    before = load_state(workspace)["sketches"]["md5"]

    image = source / "sketches" / "cat" / "0.png"
    Image.fromarray(np.full((8, 8), 7, dtype=np.uint8)).save(image)
    write_domain(source / "paintings", seed=2)
    plan = plan_watch(source, workspace)

    assert {d.domain.name: d.action for d in plan.decisions} == {"paintings": "new", "sketches": "changed"}
    assert one_pass(source, workspace, runner) == EXIT_OK
    assert runner.calls == ["sketches", "paintings", "sketches"]
    assert load_state(workspace)["sketches"]["md5"] != before


def test_failed_run_is_reported_and_retried_next_pass(source, workspace):
    write_domain(source / "paintings", seed=2)
    failing = RecordingRunner(failing=("paintings",))

    assert one_pass(source, workspace, failing) == EXIT_RUN_FAILED
    assert failing.calls == ["paintings", "sketches"], "a failure must not stop the other domains"
    assert set(load_state(workspace)) == {"sketches"}

    fixed = RecordingRunner()
    assert one_pass(source, workspace, fixed) == EXIT_OK
    assert fixed.calls == ["paintings"]


def test_invalid_domain_folder_is_reported_not_skipped(source, workspace):
    write_domain(source / "bad name!", seed=3)
    plan = plan_watch(source, workspace)

    invalid = {d.domain.name: d for d in plan.decisions}["bad name!"]
    assert invalid.action == "invalid" and "invalid domain name" in invalid.domain.problem
    assert one_pass(source, workspace, RecordingRunner()) == EXIT_RUN_FAILED


def test_ingested_domain_in_the_dvc_data_folder_is_watched(tmp_path, workspace):
    from fourds.data.ingest import ingest_domain

    ingest_domain(write_domain(tmp_path / "raw", seed=4), "photos", workspace, progress=False)
    runner = RecordingRunner()

    plan = plan_watch(workspace.data_dir, workspace)
    assert plan.ingested and [(d.domain.name, d.action) for d in plan.decisions] == [("photos", "new")]
    assert plan.decisions[0].domain.folder == workspace.domain_dir("photos") / "images"
    assert one_pass(workspace.data_dir, workspace, runner) == EXIT_OK
    assert one_pass(workspace.data_dir, workspace, runner) == EXIT_OK
    assert runner.calls == ["photos"]

    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(workspace.domain_dir("photos") / "images/dog/1.png")
    assert [d.action for d in plan_watch(workspace.data_dir, workspace).decisions] == ["changed"]


def test_dry_run_lists_and_changes_nothing(capsys, source, workspace):
    with pytest.raises(SystemExit) as finished:
        main(["watch", "--dry-run", "--source", str(source), "--workspace", str(workspace.root)])
    out = capsys.readouterr().out

    assert finished.value.code == EXIT_OK
    assert "new        sketches  md5 " in out
    assert "1 domain(s) would be distilled" in out
    assert load_state(workspace) == {}


def test_second_watcher_exits_with_a_clear_message(capsys, source, workspace):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from fourds.operations.watch import watch_lock
            from fourds.workspace import Workspace
            with watch_lock(Workspace(Path({str(workspace.root)!r}))):
                print("held", flush=True)
                sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit) as finished:
            main(["watch", "--source", str(source), "--workspace", str(workspace.root)])
        err = capsys.readouterr().err
    finally:
        holder.communicate("", timeout=30)

    assert finished.value.code == EXIT_LOCKED
    assert "another fourds watch is running on this workspace" in err
    assert f"pid {holder.pid}" in err
    assert str(lock_path(workspace)) in err
    assert load_state(workspace) == {}


def test_lock_left_by_a_dead_watcher_is_taken_over(workspace):
    lock_path(workspace).write_text("pid 999999 on elsewhere since 2020-01-01T00:00:00+00:00")
    with watch_lock(workspace), pytest.raises(WatchLocked), watch_lock(workspace):
        pass
    with watch_lock(workspace):
        pass


def test_missing_teacher_stops_the_pass_before_any_run(capsys, source, workspace):
    with pytest.raises(SystemExit) as finished:
        main(["watch", "--source", str(source), "--teacher", "fourds-teacher/7", "--workspace", str(workspace.root)])
    err = capsys.readouterr().err

    assert finished.value.code == 2
    assert "error: --teacher fourds-teacher/7: no registered model named 'fourds-teacher'" in err
    assert load_state(workspace) == {}


def test_excluded_domain_is_shown_and_not_run(source, workspace):
    write_domain(source / "photos", seed=5)
    runner = RecordingRunner()
    with watch_lock(workspace):
        plan = plan_watch(source, workspace, {"photos": "a registered teacher's source domain"})
        report = run_watch(plan, workspace, runner, echo=lambda line: None)

    excluded = {d.domain.name: d for d in plan.decisions}["photos"]
    assert excluded.action == "excluded" and not excluded.due
    assert excluded.describe() == "excluded   photos  (a registered teacher's source domain)"
    assert runner.calls == ["sketches"] and report.exit_code == EXIT_OK


def test_a_run_whose_student_was_not_promoted_succeeds_with_exit_4(source, workspace):
    """Not promoted is not a failure (the data is recorded as done), but the exit status says so."""
    write_domain(source / "photos", seed=5)

    def runner(domain: WatchedDomain) -> RunSummary:
        return RunSummary(run_name=f"distill-{domain.name}", model_version="1", promoted=domain.name == "photos")

    with watch_lock(workspace):
        report = run_watch(plan_watch(source, workspace), workspace, runner, echo=lambda line: None)

    assert report.exit_code == EXIT_NOT_PROMOTED
    assert [outcome.decision.domain.name for outcome in report.not_promoted] == ["sketches"]
    assert set(load_state(workspace)) == {"photos", "sketches"}  # both done: not retried by the next pass
    assert "2 succeeded (1 not promoted), 0 failed" in summarize(report)
    assert one_pass(source, workspace, RecordingRunner()) == EXIT_OK  # nothing due any more


def test_workspace_without_data_and_no_source_is_a_usage_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as finished:
        main(["watch", "--dry-run", "--workspace", str(tmp_path / "empty")])

    assert finished.value.code == 2
    assert "nothing to watch" in capsys.readouterr().err
