"""A training step killed mid-way and run again on a fresh machine resumes from the checkpoint mirrored to its
MLflow run, and ends with exactly the weights of an uninterrupted run (same seed), through 4Ds itself.

The pieces of a run are called as a step would call them: ``distill_for_run`` in a process of its own, with its
own step workspace (``FOURDS_STEP_WORKSPACE``), against a real MLflow store. The first attempt is SIGKILLed right
after a checkpoint reached MLflow; the retry gets a new, empty workspace, so the only way to resume is the
mirrored checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from fourds.config import load_config
from fourds.models import build_classifier, load_classifier, save_classifier
from fourds.runs.context import STEP_WORKSPACE_ENV, open_run
from fourds.runs.data import ingest_for_run
from fourds.runs.records import RunContext, TeacherWeights
from tiny_domains import COLOURS, TINY, write_colour_domain

pytestmark = pytest.mark.slow

STEPS, CHECKPOINT_EVERY, KILL_AFTER = 12, 4, 8
CONFIG = {**TINY, "guard": {"scratch_baseline": False}, "tracking": {"mirror_checkpoints": True},
          "train": {**TINY["train"], "max_steps": STEPS, "checkpoint_every_steps": CHECKPOINT_EVERY,
                    "deterministic": True}}

ATTEMPT = textwrap.dedent(f"""
    import os, signal, sys
    from fourds.config import load_config
    from fourds.runs.records import IngestedDomain, RunContext, TeacherWeights
    from fourds.runs.student import distill_for_run
    from fourds.tracking import training

    config = load_config(sys.argv[1])
    run = RunContext.model_validate_json(open(sys.argv[2]).read())
    ingested = IngestedDomain.model_validate_json(open(sys.argv[3]).read())
    teacher = TeacherWeights.model_validate_json(open(sys.argv[4]).read())
    teacher = teacher.model_copy(update={{"files": {{"teacher.safetensors": open(sys.argv[5], "rb").read()}}}})
    kill = sys.argv[6] == "kill"
    mirror = training.CheckpointMirror.on_checkpoint

    def mirror_then_die(self, step, path):
        mirror(self, step, path)
        if kill and step >= {KILL_AFTER}:
            os.kill(os.getpid(), signal.SIGKILL)  # as a node that goes away: no clean-up, no exception

    training.CheckpointMirror.on_checkpoint = mirror_then_die
    trained = distill_for_run(config, run, ingested, teacher)
    open(sys.argv[7], "wb").write(trained.files["student.safetensors"])
""")


def attempt(tmp_path: Path, name: str, inputs: list[Path], *, kill: bool) -> tuple[int, Path]:
    script = tmp_path / "attempt.py"
    script.write_text(ATTEMPT)
    output = tmp_path / f"{name}-student.safetensors"
    env = {**os.environ, STEP_WORKSPACE_ENV: str(tmp_path / f"{name}-workspace")}
    done = subprocess.run([sys.executable, str(script), *map(str, inputs), "kill" if kill else "finish", str(output)],
                          env=env, capture_output=True, text=True, timeout=900)
    if not kill:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.returncode, output


def test_a_killed_distillation_retried_elsewhere_resumes_and_ends_with_the_uninterrupted_weights(workspace, tmp_path):
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(CONFIG))
    config = load_config(config_file)
    target = write_colour_domain(tmp_path / "target", brightness=0.6, noise=25, seed=2, unlabelled=6)
    torch.manual_seed(0)
    teacher_file = save_classifier(build_classifier("resnet18", len(COLOURS), stem="no_maxpool"),
                                   tmp_path / "teacher.safetensors", arch="resnet18", classes=sorted(COLOURS),
                                   stem="no_maxpool")
    teacher = TeacherWeights(weights_path=str(teacher_file), arch="resnet18", stem="no_maxpool",
                             classes=sorted(COLOURS), reference=str(teacher_file))

    def new_run(name: str) -> list[Path]:
        run = open_run(config, domain="colours", workspace_root=str(workspace.root), kind="distill", run_name=name,
                       orchestrator_run_id=f"zenml-{name}")
        ingested = ingest_for_run(config, run, str(target), None)
        files = []
        for label, record in (("run", run), ("ingested", ingested), ("teacher", teacher)):
            files.append(tmp_path / f"{name}-{label}.json")
            files[-1].write_text(record.model_dump_json())
        return [config_file, *files, teacher_file]

    _, uninterrupted = attempt(tmp_path, "whole", new_run("whole"), kill=False)
    interrupted_inputs = new_run("interrupted")
    killed, _ = attempt(tmp_path, "first-try", interrupted_inputs, kill=True)
    assert killed == -signal.SIGKILL, "premise: the first attempt died after a checkpoint reached MLflow"
    _, retried = attempt(tmp_path, "retry", interrupted_inputs, kill=False)

    from mlflow import MlflowClient

    run_id = RunContext.model_validate_json(interrupted_inputs[1].read_text()).mlflow_run_id
    starts = [artifact.path for artifact in MlflowClient().list_artifacts(run_id, "training")]
    assert f"training/train_info_step{KILL_AFTER}.json" in starts, f"the retry did not resume: {starts}"
    whole, _ = load_classifier(uninterrupted)
    resumed, _ = load_classifier(retried)
    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
