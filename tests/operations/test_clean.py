"""``fourds clean``: a killed run's MLflow run left RUNNING and its run folder are ended and removed; a live run's
(its domain's lock held) are left alone. Real MLflow (SQLite), real locks, a real ZenML store."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from fourds.operations.cleanup import ENDED_BY_TAG, domain_of_run
from fourds.operations.locks import domain_lock
from fourds.tracking import experiment_for_domain
from fourds_app.cli import main

KILLED, LIVE = "distill-x-20261130-120000-abc123", "teacher-y-z-20261130-120500-def456"


def leftovers(workspace, run_name: str, domain: str) -> str:
    """What a SIGKILLed run leaves: its MLflow run RUNNING, its run folder with a 2 MB checkpoint."""
    run = MlflowClient().create_run(experiment_for_domain(domain), run_name=run_name, tags={"fourds.domain": domain})
    checkpoint = workspace.run_dir(run_name) / "checkpoints" / "distill" / "last.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"\0" * 2**21)
    return run.info.run_id


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as finished:
        main(list(args))
    captured = capsys.readouterr()
    return finished.value.code, captured.out, captured.err


def test_run_names_give_their_domain_even_with_dashes():
    assert domain_of_run(KILLED) == "x"
    assert domain_of_run(LIVE) == "y-z"
    assert domain_of_run("something-else") is None and domain_of_run("train-x-20261130-120000-abc123") is None


@pytest.mark.slow
def test_clean_ends_what_a_killed_run_left_and_leaves_a_live_run_alone(workspace, zenml_store, capsys):
    killed = leftovers(workspace, KILLED, "x")
    live = leftovers(workspace, LIVE, "y-z")
    client = MlflowClient()

    with domain_lock(workspace, "y-z"):  # a run of y-z is in progress
        code, dry, _ = run_cli(capsys, "clean", "--dry-run", "--workspace", str(workspace.root))
        assert code == 0
        assert f"would end 1 MLflow run(s) left RUNNING: {KILLED} ({killed})" in dry
        assert "would remove 1 run folder(s), 2.0 MB" in dry
        assert client.get_run(killed).info.status == "RUNNING" and workspace.run_dir(KILLED).is_dir()

        code, out, _ = run_cli(capsys, "clean", "--workspace", str(workspace.root))

    assert code == 0, out
    assert f"ended 1 MLflow run(s) left RUNNING: {KILLED} ({killed})" in out
    assert "removed 1 run folder(s), 2.0 MB" in out
    assert "left alone: a run of 'y-z' is in progress" in out
    assert client.get_run(killed).info.status == "FAILED"
    assert client.get_run(killed).data.tags[ENDED_BY_TAG].startswith("fourds clean")
    assert not workspace.run_dir(KILLED).exists()
    assert client.get_run(live).info.status == "RUNNING" and workspace.run_dir(LIVE).is_dir()


def test_clean_refuses_to_judge_runs_tracked_in_a_shared_store(workspace, capsys, monkeypatch):
    """With a tracking server, other machines' and asynchronous cluster runs hold no lock here: nothing is ended."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # never contacted

    code, out, err = run_cli(capsys, "clean", "--workspace", str(workspace.root))

    assert code == 2 and out == ""
    assert err.startswith("error: runs are tracked in http://127.0.0.1:9, not in this workspace's own store")
