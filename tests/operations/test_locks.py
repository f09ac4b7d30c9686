"""One lock per domain (issue 14, item 1): a second run of the same domain refuses to start, before it ingests.

The other run is a real process holding the lock; the refused one goes through the CLI.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mlflow import MlflowClient

from fourds.exit_codes import EXIT_LOCKED, EXIT_RUN_FAILED
from fourds.operations.locks import DomainLocked, domain_lock
from fourds.operations.watch import load_state, watch_lock
from fourds.workspace import Workspace
from fourds_app.cli import main


@contextmanager
def lock_held_elsewhere(workspace: Workspace, domain: str) -> Iterator[subprocess.Popen]:
    """Another process that holds ``domain``'s lock (its command line reads ``... fourds distill --domain``)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from pathlib import Path
            from fourds.operations.locks import domain_lock
            from fourds.workspace import Workspace
            with domain_lock(Workspace(Path({str(workspace.root)!r})), {domain!r}):
                print("held", flush=True)
                sys.stdin.read()
        """), "fourds", "distill", "--domain", domain],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        if holder.poll() is None:
            holder.communicate("", timeout=60)


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "inputs" / "sketches"
    for label in ("cat", "dog"):
        (folder / label).mkdir(parents=True)
    return folder


@pytest.fixture
def teacher_file(tmp_path) -> Path:
    from fourds.models import build_classifier, save_classifier

    return save_classifier(build_classifier("resnet18", 2), tmp_path / "inputs" / "teacher.safetensors",
                           arch="resnet18", classes=["cat", "dog"])


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as finished:
        main(list(args))
    captured = capsys.readouterr()
    return finished.value.code, captured.out, captured.err


def assert_nothing_was_done(workspace: Workspace, domain: str) -> None:
    assert not workspace.domain_dir(domain).exists()
    assert not any(workspace.runs_dir.iterdir())
    assert not (workspace.state_dir / "zenml").exists()
    assert [e.name for e in MlflowClient().search_experiments()] == ["Default"]
    assert MlflowClient().search_registered_models() == []


@pytest.mark.parametrize("command", [["distill", "--teacher", "TEACHER"], ["teacher", "train"]],
                         ids=["distill", "teacher-train"])
def test_a_second_run_of_the_same_domain_exits_3_naming_the_holder(capsys, workspace, images, teacher_file,
                                                                    command):
    args = [str(teacher_file) if arg == "TEACHER" else arg for arg in command]
    with lock_held_elsewhere(workspace, "sketches") as holder:
        code, _, err = run_cli(capsys, *args, "--domain", "sketches", "--data", str(images),
                               "--workspace", str(workspace.root))

    assert code == EXIT_LOCKED
    [line] = err.strip().splitlines()
    assert line.startswith("error: domain 'sketches' is in use by another fourds run (")
    assert f"pid {holder.pid} on {socket.gethostname()} since " in line
    assert "command: -c fourds distill --domain sketches" in line
    assert f"lock file {workspace.domain_lock_file('sketches')}" in line
    assert_nothing_was_done(workspace, "sketches")


def test_runs_of_other_domains_are_not_held_up(workspace):
    with lock_held_elsewhere(workspace, "sketches"):
        with domain_lock(workspace, "photos"):
            pass
        with pytest.raises(DomainLocked, match="domain 'sketches' is in use"):
            with domain_lock(workspace, "sketches"):
                pass
    with domain_lock(workspace, "sketches"):  # released when its holder finished
        pass


def test_the_lock_of_a_killed_run_is_taken_over_and_said_so(workspace):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from pathlib import Path
            from fourds.operations.locks import domain_lock
            from fourds.workspace import Workspace
            with domain_lock(Workspace(Path({str(workspace.root)!r})), "sketches"):
                print("held", flush=True)
                time.sleep(600)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=60)
    assert f'"pid": {holder.pid}' in workspace.domain_lock_file("sketches").read_text()  # its record is left

    told = []
    with domain_lock(workspace, "sketches", on_takeover=told.append):
        pass

    [message] = told
    assert f"took over the lock {workspace.domain_lock_file('sketches')} left by pid {holder.pid}" in message
    assert message.endswith("which is no longer running")
    assert workspace.domain_lock_file("sketches").read_text() == ""  # released cleanly this time


def test_watch_inside_its_own_lock_reports_a_domain_another_run_holds(capsys, workspace, images, teacher_file):
    """No deadlock between the watch lock and the domain lock: that domain fails for this pass, nothing else."""
    with lock_held_elsewhere(workspace, "sketches"):
        code, out, _ = run_cli(capsys, "watch", "--source", str(images.parent), "--teacher", str(teacher_file),
                               "--workspace", str(workspace.root))

    assert code == EXIT_RUN_FAILED
    assert "FAILED     sketches after 0s: DomainLocked: domain 'sketches' is in use by another fourds run" in out
    assert load_state(workspace) == {}  # retried by the next pass
    assert_nothing_was_done(workspace, "sketches")
    with watch_lock(workspace), domain_lock(workspace, "sketches"):  # both free again, and nest
        pass
