"""Alias moves at the same moment (issue 14, item 3): no history entry is lost, and rollback still works.

Two real processes move ``champion`` of one model in the same instant, round after round,
against the workspace's SQLite MLflow. Before moves were serialised and each history entry
had its own tag, entries went missing in about a quarter of the rounds, after which
``fourds rollback`` refused with a false "moved outside fourds".
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import mlflow
import pytest

from fourds.registry.aliases import _holders, alias_history, alias_version, move_alias, rollback

MODEL = "fourds-student-race"
ROUNDS = 12

MOVER = textwrap.dedent("""
    import sys
    import mlflow
    from fourds.registry.aliases import move_alias
    mlflow.set_tracking_uri(sys.argv[1])
    mlflow.set_registry_uri(sys.argv[1])
    print("ready", flush=True)
    for line in sys.stdin:
        version, reason = line.split(maxsplit=1)
        move_alias(sys.argv[2], "champion", version, who=sys.argv[3], reason=reason.strip())
        print("done", flush=True)
""")


@pytest.fixture
def movers(workspace):
    uri = mlflow.get_registry_uri()
    processes = [subprocess.Popen([sys.executable, "-c", MOVER, uri, MODEL, who], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True) for who in ("alice", "bob")]
    try:
        for process in processes:
            assert process.stdout.readline().strip() == "ready"
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.communicate("", timeout=120)


def test_simultaneous_moves_lose_no_history_and_rollback_still_works(workspace, bare_version, movers):
    versions = [bare_version(MODEL, {"test_accuracy": accuracy}) for accuracy in (0.7, 0.8, 0.9)]
    move_alias(MODEL, "champion", versions[0], who="ci", reason="first")
    inconsistent_rounds = []

    for round_ in range(ROUNDS):
        for process, version in zip(movers, (versions[1], versions[2]), strict=True):
            process.stdin.write(f"{version} round {round_}\n")  # both wait on their stdin: a near-common start
        for process in movers:
            process.stdin.flush()
        for process in movers:
            assert process.stdout.readline().strip() == "done"
        history = alias_history(MODEL)
        if len(history) != 1 + 2 * (round_ + 1) or _holders(history)[-1] != alias_version(MODEL, "champion"):
            inconsistent_rounds.append(round_)

    assert inconsistent_rounds == []
    history = alias_history(MODEL)
    assert [entry["reason"] for entry in history].count("first") == 1
    assert sorted(entry["reason"] for entry in history[1:]) == sorted(
        f"round {round_}" for round_ in range(ROUNDS) for _ in range(2))
    current = alias_version(MODEL, "champion")
    assert rollback(MODEL, who="carol", reason="undo the last move") != current


def test_history_kept_in_one_tag_by_earlier_versions_is_still_read_first(workspace, bare_version):
    from mlflow import MlflowClient

    from fourds.registry.aliases import HISTORY_TAG_PREFIX

    v1, v2, v3 = (bare_version(MODEL, {"test_accuracy": accuracy}) for accuracy in (0.7, 0.8, 0.9))
    legacy = [{"version": v1, "previous": None, "who": "old", "reason": "r", "at": "2024-01-01T00:00:00+00:00",
               "action": "move"},
              {"version": v2, "previous": v1, "who": "old", "reason": "r", "at": "2024-01-02T00:00:00+00:00",
               "action": "move"}]
    MlflowClient().set_registered_model_tag(MODEL, HISTORY_TAG_PREFIX + "champion", json.dumps(legacy))
    MlflowClient().set_registered_model_alias(MODEL, "champion", v2)

    move_alias(MODEL, "champion", v3, who="new", reason="after the upgrade")

    assert [entry["version"] for entry in alias_history(MODEL)] == [v1, v2, v3]
    assert rollback(MODEL, who="carol", reason="back") == v2
    assert rollback(MODEL, who="carol", reason="further back") == v1


def test_only_the_latest_moves_are_kept(workspace, bare_version, monkeypatch):
    from fourds.registry import aliases

    monkeypatch.setattr(aliases, "_MAX_HISTORY_ENTRIES", 3)
    versions = [bare_version(MODEL, {"test_accuracy": 0.5}) for _ in range(5)]
    for version in versions:
        move_alias(MODEL, "champion", version, who="ci", reason=f"deploy {version}")

    assert [entry["version"] for entry in alias_history(MODEL)] == versions[-3:]
