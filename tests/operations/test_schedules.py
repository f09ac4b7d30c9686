"""``fourds distill --schedule``: the local orchestrator cannot schedule, and the CLI says so."""

from __future__ import annotations

import pytest

from fourds_app.cli import main
from pipelines.schedules import check_cron


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as finished:
        main(list(args))
    captured = capsys.readouterr()
    return finished.value.code, captured.out, captured.err


@pytest.mark.parametrize("expression", ["0 3 * * *", "*/15 * * * 1-5", "0 0 3 * * *", "@daily", " 0  3 * * * "])
def test_cron_expressions_are_accepted(expression):
    assert check_cron(expression) == " ".join(expression.split())


@pytest.mark.parametrize("expression", ["", "daily", "0 3 * *", "0 3 * * * * *", "0 3 * * $(rm -rf)"])
def test_malformed_cron_is_refused_with_its_expected_form(expression):
    with pytest.raises(ValueError, match="is not a cron expression: expected 5 fields"):
        check_cron(expression)


def test_malformed_cron_is_a_usage_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "distill", "--domain", "sketches", "--data", str(tmp_path), "--schedule", "daily",
                           "--workspace", str(tmp_path / "ws"))

    assert code == 2
    assert "--schedule: 'daily' is not a cron expression" in err


@pytest.mark.slow
def test_local_orchestrator_cannot_schedule_and_the_cli_says_what_to_do(capsys, tmp_path, zenml_store):
    code, _, err = run_cli(capsys, "distill", "--domain", "sketches", "--data", str(tmp_path),
                             "--schedule", "0 3 * * *", "--workspace", str(tmp_path / "ws"))

    assert code == 2
    assert "the local orchestrator 'default' of the active ZenML stack 'default' cannot run schedules" in err
    assert "use a Kubeflow/Kubernetes stack (see docs/OPERATIONS.md) or cron with `fourds watch`" in err
    assert len(err.strip().splitlines()) == 1
