"""A reduced ``fourds demo`` on the real local stack: the flagship command's whole path, with a tiny
configuration (a few training steps) instead of configs/demo.yaml. Checks the path and its printed
time accounting, not accuracy."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from fourds_app.cli import main
from fourds_app.report import PRODUCT_STEPS
from tiny_domains import TINY

pytestmark = pytest.mark.slow


def test_a_reduced_demo_runs_both_pipelines_and_accounts_for_its_time(zenml_store, workspace, tmp_path, capsys):
    config = copy.deepcopy(TINY)
    config["train"]["max_steps"] = config["teacher_train"]["max_steps"] = 4
    config["data"]["label_budget"] = 5
    config_file = tmp_path / "tiny-demo.yaml"
    config_file.write_text(yaml.safe_dump(config))

    with pytest.raises(SystemExit) as finished:
        main(["demo", "--images-per-class", "10", "--config", str(config_file), "--workspace", str(workspace.root)])
    out = capsys.readouterr().out

    assert finished.value.code in (0, 4)  # 4: a 4-step student need not pass the promotion gates
    assert "registered" in out and "fourds-student-target" in out
    steps = {}
    for line in re.findall(r"seconds per step of \S+: (.*)", out):
        for name, seconds in re.findall(r"(\w+) ([\d.]+)", line):
            steps[name] = steps.get(name, 0.0) + float(seconds)
    assert {"train_teacher_model", "distill_student", "ingest_data", "validate_data", "promote_student"} <= set(steps)
    total = float(re.search(r"time: total ([\d.]+)s", out).group(1))
    generating = float(re.search(r"of which generating the demo images ([\d.]+)s", out).group(1))
    overhead, share, wall, startup = map(float, re.search(
        r"orchestration overhead: ([\d.]+)s = ([\d.]+)% of ([\d.]+)s wall \(process start-up ([\d.]+)s", out).groups())
    # The overhead is the wall time less the product's steps and the demo's image generation.
    product = sum(seconds for name, seconds in steps.items() if name in PRODUCT_STEPS)
    assert wall == pytest.approx(startup + total, abs=0.11)
    assert overhead == pytest.approx(wall - product - generating, abs=0.1 * len(steps) + 0.2)
    assert share == pytest.approx(100 * overhead / wall, abs=0.06)
    assert 0 < generating < total and 0 < startup
