"""The Kubeflow recipe registers, and the distill pipeline compiles into a KFP spec offline, steps in order.

Needs the optional extra (``pip install .[kubeflow]``, or requirements-kubeflow.lock);
the base environment skips it. CI runs it in a second environment (.ci/run).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

MISSING_EXTRA = [name for name in ("kfp", "kubernetes", "s3fs") if importlib.util.find_spec(name) is None]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(MISSING_EXTRA),
        reason=f"the Kubeflow extra is not installed (missing {', '.join(MISSING_EXTRA)}): "
        "pip install .[kubeflow], or a venv from requirements-kubeflow.lock",
    ),
]

JOB = Path(__file__).with_name("kubeflow_compile_job.py")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Steps of the distill pipeline in the order the data flows through them.
DISTILL_STEPS = {"start_run", "ingest_data", "load_teacher", "validate_data", "distill_student", "evaluate_models",
                 "export_onnx", "register_student", "promote_student"}
# A path through the pipeline, in the order the data flows along it.
DISTILL_CHAIN = ["start_run", "ingest_data", "load_teacher", "validate_data", "distill_student", "export_onnx",
                 "register_student", "promote_student"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("kubeflow")
    out_json = folder / "compiled.json"
    env = {**os.environ, "ZENML_CONFIG_PATH": str(folder / "zenml"), "ZENML_ANALYTICS_OPT_IN": "false",
           "AUTO_OPEN_DASHBOARD": "false"}
    completed = subprocess.run([sys.executable, str(JOB), str(out_json)], cwd=PROJECT_ROOT, env=env,
                               capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, f"compile job failed:\n{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}"
    result = json.loads(out_json.read_text())
    result["spec"] = yaml.safe_load(Path(result["spec_path"]).read_text())
    return result


def steps_of(spec: dict) -> dict[str, list[str]]:
    """Each KFP task by its ZenML step name (its display name), with the steps it waits for.

    KFP turns names into Kubernetes-safe task keys (``distill_student`` -> ``distill-student``);
    the display name keeps ZenML's step name.
    """
    tasks = spec["root"]["dag"]["tasks"]
    step_name = {key: task["taskInfo"]["name"] for key, task in tasks.items()}
    return {step_name[key]: sorted(step_name[dep] for dep in task.get("dependentTasks", []))
            for key, task in tasks.items()}


def topological_positions(dependencies: dict[str, list[str]]) -> dict[str, int]:
    """Position of each step in a dependency-respecting order; fails on a cycle or an unknown step."""
    order: list[str] = []
    remaining = dict(dependencies)
    while remaining:
        ready = [name for name, needs in remaining.items() if set(needs) <= set(order)]
        assert ready, f"no step can start (cycle or unknown dependency) among {sorted(remaining)}"
        for name in sorted(ready):
            order.append(name)
            del remaining[name]
    return {name: position for position, name in enumerate(order)}


def test_spec_holds_every_step_with_its_upstream_steps(compiled):
    steps = steps_of(compiled["spec"])
    upstream = {name: sorted(needs) for name, needs in compiled["upstream_steps"].items()}

    assert set(steps) == set(upstream), "the KFP spec and the ZenML pipeline have different steps"
    assert set(steps) == DISTILL_STEPS
    assert steps == upstream


def test_steps_run_in_dependency_order(compiled):
    positions = topological_positions(steps_of(compiled["spec"]))
    chain_positions = [positions[name] for name in DISTILL_CHAIN]
    assert chain_positions == sorted(chain_positions), f"order: {sorted(positions, key=positions.get)}"


def test_every_step_runs_zenml_step_entrypoint_in_the_image_with_the_recipe_environment(compiled):
    spec = compiled["spec"]
    executors = spec["deploymentSpec"]["executors"]
    for task in spec["root"]["dag"]["tasks"].values():
        component = spec["components"][task["componentRef"]["name"]]
        container = executors[component["executorLabel"]]["container"]
        assert container["image"] == compiled["image"]
        assert container["args"][container["args"].index("--step_name") + 1] == task["taskInfo"]["name"]
        environment = {variable["name"]: variable["value"] for variable in container["env"]}
        assert environment.items() >= compiled["environment"].items(), "deploy/kubeflow/run_config.yaml environment"
