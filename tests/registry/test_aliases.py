import pytest
from mlflow import MlflowClient

from fourds.registry.aliases import alias_history, alias_version, move_alias, rollback
from fourds.registry.errors import RegistryError

MODEL = "fourds-student-usps"


@pytest.fixture
def three_versions(workspace, bare_version):
    return [bare_version(MODEL, {"test_accuracy": accuracy}) for accuracy in (0.7, 0.8, 0.9)]


def test_manual_move_records_who_when_why(three_versions):
    v1, v2, _ = three_versions
    assert move_alias(MODEL, "champion", v1, who="alice", reason="first deploy") is None
    assert move_alias(MODEL, "champion", v2, who="bob", reason="better on the night shift") == v1

    assert alias_version(MODEL, "champion") == v2
    tags = MlflowClient().get_model_version(MODEL, v2).tags
    assert tags["fourds.alias.champion.set_by"] == "bob"
    assert tags["fourds.alias.champion.reason"] == "better on the night shift"
    assert tags["fourds.alias.champion.set_at"].endswith("+00:00")
    history = alias_history(MODEL, "champion")
    assert [(e["version"], e["previous"], e["who"]) for e in history] == [(v1, None, "alice"), (v2, v1, "bob")]


def test_rollback_walks_back_through_earlier_champions(three_versions):
    v1, v2, v3 = three_versions
    for version in (v1, v2, v3):
        move_alias(MODEL, "champion", version, who="ci", reason=f"deploy {version}")

    assert rollback(MODEL, who="carol", reason="v3 misbehaves") == v2
    assert alias_version(MODEL, "champion") == v2
    assert rollback(MODEL, who="carol", reason="v2 too") == v1
    assert alias_version(MODEL, "champion") == v1
    with pytest.raises(RegistryError, match="no earlier version"):
        rollback(MODEL, who="carol", reason="and again")

    last = alias_history(MODEL, "champion")[-1]
    assert last["action"] == "rollback" and last["who"] == "carol" and last["previous"] == v2


def test_rollback_refuses_when_the_alias_was_moved_outside_fourds(three_versions):
    v1, v2, v3 = three_versions
    move_alias(MODEL, "champion", v1, who="ci", reason="deploy")
    move_alias(MODEL, "champion", v2, who="ci", reason="deploy")
    MlflowClient().set_registered_model_alias(MODEL, "champion", v3)  # e.g. from the MLflow UI

    with pytest.raises(RegistryError, match="moved outside fourds"):
        rollback(MODEL, who="dave", reason="oops")


def test_rollback_without_champion_and_bad_moves_are_named(three_versions):
    v1, _, _ = three_versions
    with pytest.raises(RegistryError, match="no 'champion' alias"):
        rollback(MODEL, who="erin", reason="nothing there")
    with pytest.raises(RegistryError, match=r"has no version 42; its versions: 1, 2, 3"):
        move_alias(MODEL, "champion", 42, who="erin", reason="typo")
    with pytest.raises(RegistryError, match="no registered model named 'fourds-student-nowhere'"):
        move_alias("fourds-student-nowhere", "champion", v1, who="erin", reason="typo")
    with pytest.raises(ValueError, match="non-empty who and reason"):
        move_alias(MODEL, "champion", v1, who="erin", reason="  ")
    with pytest.raises(ValueError, match="invalid alias 'latest'"):
        move_alias(MODEL, "latest", v1, who="erin", reason="reserved")
