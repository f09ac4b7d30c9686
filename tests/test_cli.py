"""The command line as a user meets it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import pytest

from fourds_app.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as finished:
        main(list(args))
    captured = capsys.readouterr()
    return finished.value.code, captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["distill", "--data", "x"], "Missing option '--domain'"),
        (["distill", "--domain", "sketches"], "Missing option '--data'"),
        (["promote", "fourds-student-x", "3"], "Missing option '--reason'"),
        (["rollback"], "Missing argument 'MODEL_NAME'"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["status", "--colour"], "No such option '--colour'"),
    ],
)
def test_usage_errors_exit_2_with_one_error_line(capsys, args, expected):
    code, out, err = run_cli(capsys, *args)

    assert code == 2
    assert err.startswith("error: ")
    assert expected in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err


def test_missing_data_folder_is_named(capsys, tmp_path):
    missing = tmp_path / "no-such-folder"
    code, _, err = run_cli(capsys, "distill", "--domain", "sketches", "--data", str(missing),
                           "--workspace", str(tmp_path / "ws"))

    assert code == 2
    assert f"--data {missing}: no such file or folder" in err


def test_invalid_config_names_the_file_and_the_field(capsys, tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("train:\n  epochs: 0\n")
    code, _, err = run_cli(capsys, "status", "--config", str(config_file), "--workspace", str(tmp_path / "ws"))

    assert code == 2
    assert str(config_file) in err
    assert "train.epochs" in err
    assert "Traceback" not in err


def test_unknown_config_key_is_an_error(capsys, tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("trian:\n  epochs: 3\n")
    code, _, err = run_cli(capsys, "status", "--config", str(config_file), "--workspace", str(tmp_path / "ws"))

    assert code == 2
    assert "trian" in err


def test_debug_shows_the_traceback(capsys, tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("train: [not, a, mapping]\n")
    code, _, err = run_cli(capsys, "status", "--config", str(config_file), "--debug")

    assert code == 2
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("error: ")


def test_import_needs_at_least_two_classes(capsys, tmp_path):
    weights = tmp_path / "teacher.safetensors"
    weights.write_bytes(b"not really weights")
    code, _, err = run_cli(capsys, "teacher", "import", str(weights), "--arch", "resnet34", "--classes", "cat",
                           "--workspace", str(tmp_path / "ws"))

    assert code == 2
    assert "--classes" in err


def test_status_of_an_empty_workspace(capsys, tmp_path):
    workspace = tmp_path / "ws"
    code, out, err = run_cli(capsys, "status", "--workspace", str(workspace))

    assert code == 0, err
    assert "no models registered yet" in out
    assert str(workspace) in out


def test_help_lists_every_command(capsys):
    code, out, _ = run_cli(capsys, "--help")

    assert code == 0
    for command in ("demo", "teacher", "distill", "status", "promote", "rollback"):
        assert command in out


def test_distill_without_any_teacher_says_how_to_get_one(capsys, tmp_path):
    data = tmp_path / "sketches"
    (data / "cat").mkdir(parents=True)
    code, _, err = run_cli(capsys, "distill", "--domain", "sketches", "--data", str(data),
                           "--workspace", str(tmp_path / "ws"))

    assert code == 2
    [error] = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "fourds-teacher" in error
    assert "fourds teacher train" in error
    assert "Traceback" not in err


def test_promoting_an_unknown_model_is_a_usage_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "promote", "fourds-student-nowhere", "1", "--reason", "test",
                           "--workspace", str(tmp_path / "ws"))

    assert code == 2
    assert "fourds-student-nowhere" in err


def test_importing_a_file_that_is_not_weights_names_it(capsys, tmp_path):
    weights = tmp_path / "teacher.safetensors"
    weights.write_bytes(b"not really weights")
    code, _, err = run_cli(capsys, "teacher", "import", str(weights), "--arch", "resnet18", "--classes", "cat,dog",
                           "--workspace", str(tmp_path / "ws"))

    assert code == 2
    assert str(weights) in err
    assert "Traceback" not in err
