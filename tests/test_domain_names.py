"""Domain names (issue 14, item 2): one rule, checked before anything exists for the domain.

A bad ``--domain`` is refused while the command's arguments are parsed (exit 2, one line),
so no run folder, MLflow experiment or ZenML run is created, inside the workspace or outside it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from fourds.workspace import DOMAIN_NAME_RULE, DomainNameError, Workspace, check_domain_name
from fourds_app.cli import main

BAD_NAMES = ["x/../../ESCAPED", "", ".", "..", "a/b", "a\\b", "a\0b", "   ", " sketches", "-rf", ".hidden", "x" * 101]


@pytest.mark.parametrize("name", ["sketches", "mnist_m", "office-31.amazon", "A", "x" * 100])
def test_good_names_pass(name):
    assert check_domain_name(name) == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_saying_what_is_allowed(name):
    with pytest.raises(DomainNameError) as refused:
        check_domain_name(name)
    assert repr(name) in str(refused.value)
    assert DOMAIN_NAME_RULE in str(refused.value)


def test_the_workspace_refuses_to_build_paths_outside_itself(tmp_path):
    workspace = Workspace(tmp_path)
    with pytest.raises(DomainNameError, match="contains '/'"):
        workspace.domain_dir("x/../../ESCAPED")
    for run_name in ("distill-x/../../ESCAPED-20250101", "..", ".", "", "a\\b", "a\0b"):
        with pytest.raises(ValueError, match="single folder name"):
            workspace.run_dir(run_name)
    assert workspace.run_dir("distill-sketches-20250101-000000-abcdef").parent == workspace.runs_dir


def everything_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@pytest.fixture
def weights_file(tmp_path):
    path = tmp_path / "inputs" / "teacher.safetensors"
    path.parent.mkdir()
    path.write_bytes(b"never read: the domain is refused first")
    return path


def command_lines(name: str, data: Path, weights: Path) -> list[list[str]]:
    return [
        ["distill", "--domain", name, "--data", str(data), "--teacher", str(weights)],
        ["teacher", "train", "--domain", name, "--data", str(data)],
        ["teacher", "import", str(weights), "--arch", "resnet18", "--classes", "cat,dog", "--source-domain", name],
    ]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_every_command_refuses_a_bad_domain_before_creating_anything(capsys, workspace, weights_file, name):
    data = weights_file.parent / "images"
    (data / "cat").mkdir(parents=True)
    root = workspace.root.parent  # the test's whole folder: the workspace and anything beside or above it
    before = everything_under(root)
    experiments = [experiment.name for experiment in MlflowClient().search_experiments()]

    for args in command_lines(name, data, weights_file):
        with pytest.raises(SystemExit) as finished:
            main([*args, "--workspace", str(workspace.root)])
        err = capsys.readouterr().err

        assert finished.value.code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith("error: Invalid value for '--") and "invalid domain name" in err
        assert "Traceback" not in err

    assert everything_under(root) == before
    assert [experiment.name for experiment in MlflowClient().search_experiments()] == experiments
    assert MlflowClient().search_registered_models() == []


def test_watch_reports_a_badly_named_folder_and_plans_the_others(tmp_path, workspace):
    from fourds.operations.watch import plan_watch

    source = tmp_path / "domains"
    for name in ("sketches", "bad name", "   ", "x..y"):
        (source / name / "cat").mkdir(parents=True)
        (source / name / "cat" / "0.png").write_bytes(b"not decoded by a plan")

    decisions = {decision.domain.name: decision for decision in plan_watch(source, workspace).decisions}

    assert {name: decision.action for name, decision in decisions.items()} == {
        "sketches": "new", "x..y": "new", "bad name": "invalid", "   ": "invalid"}
    assert "invalid domain name 'bad name' (contains ' ')" in decisions["bad name"].domain.problem
