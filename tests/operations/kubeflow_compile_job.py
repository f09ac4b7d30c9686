"""Register the Kubeflow stack recipe and compile the distill pipeline into a KFP spec, with no cluster.

Run by ``test_kubeflow_compile.py`` in its own process (``ZENML_CONFIG_PATH`` set to a
fresh folder), so the Kubeflow stack it registers never becomes another test's stack.

1. ``deploy/register_stack.sh deploy/kubeflow/stack.yaml`` registers the recipe's stack
   (Kubeflow orchestrator, S3 artifact store, container registry, Docker image builder),
   exactly as a user would, with the orchestrator pointing at a local port where nothing
   listens.
2. The distill pipeline, configured by ``deploy/kubeflow/run_config.yaml``, becomes a
   ZenML snapshot, and the stack submits it. ZenML 0.98 has no compile-only switch for
   its Kubeflow orchestrator: submitting compiles the KFP spec into a YAML file, then
   uploads it; the upload is refused (ZenML logs a warning), and the file stays.
   The one departure from the recipe: the image is named, not built (no Docker here).

Usage: python kubeflow_compile_job.py OUT_JSON
Writes {"spec_path", "image", "upstream_steps": {step: [upstream steps]}, "environment"} to OUT_JSON.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STACK_RECIPE = PROJECT_ROOT / "deploy" / "kubeflow" / "stack.yaml"
RUN_CONFIG = PROJECT_ROOT / "deploy" / "kubeflow" / "run_config.yaml"
IMAGE = "registry.example.com/fourds/fourds:compile-test"


def unused_local_url() -> str:
    """A URL on this machine where nothing listens: the upload is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/pipeline"


def register_recipe_stack() -> None:
    recipe_env = {
        "FOURDS_KUBEFLOW_HOST": unused_local_url(),
        "FOURDS_ARTIFACT_STORE": "s3://fourds-compile-test/zenml",
        "FOURDS_S3_ENDPOINT": "http://minio-service.kubeflow:9000",
        "FOURDS_CONTAINER_REGISTRY": "registry.example.com/fourds",
        "AWS_ACCESS_KEY_ID": "compile-test",
        "AWS_SECRET_ACCESS_KEY": "compile-test",
        "PYTHON": sys.executable,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # this venv's zenml
    }
    subprocess.run(["bash", str(PROJECT_ROOT / "deploy" / "register_stack.sh"), str(STACK_RECIPE)],
                   env={**os.environ, **recipe_env}, cwd=PROJECT_ROOT, check=True, stdin=subprocess.DEVNULL)


def main(out_json: Path) -> None:
    register_recipe_stack()

    from zenml.client import Client
    from zenml.config import DockerSettings

    from fourds.config import load_config
    from pipelines.distill import distill_pipeline
    from pipelines.launch import zenml_run_options

    stack = Client().active_stack
    assert stack.orchestrator.flavor == "kubeflow", f"the recipe did not activate a Kubeflow stack: {stack.name}"
    # The image is named, not built: no Docker daemon here. (A built image holds the code.)
    options = zenml_run_options(RUN_CONFIG)
    options["settings"]["docker"] = DockerSettings(
        skip_build=True, parent_image=IMAGE, allow_download_from_artifact_store=False,
        allow_download_from_code_repository=False, allow_including_files_in_images=False,
    ).model_dump(exclude_unset=True)
    with tempfile.TemporaryDirectory() as folder:
        options_file = Path(folder) / "run_options.yaml"
        options_file.write_text(yaml.safe_dump(options))
        configured = distill_pipeline.with_options(config_path=str(options_file))
        configured.prepare(config=load_config(RUN_CONFIG), domain="sketches",
                           data_source="https://example.com/sketches.tar.gz", workspace_root="/workspace")
        snapshot = configured.create_snapshot(name="kubeflow-compile-test")

    stack.submit_pipeline(snapshot)  # compiles the spec, then the upload is refused: nothing listens

    specs = sorted(Path(stack.orchestrator.pipeline_directory).glob("*.yaml"))
    if len(specs) != 1:
        raise SystemExit(f"expected one compiled spec in {stack.orchestrator.pipeline_directory}, found {specs}")
    upstream = {name: list(step.spec.upstream_steps) for name, step in snapshot.step_configurations.items()}
    environment = yaml.safe_load(RUN_CONFIG.read_text())["environment"]
    out_json.write_text(json.dumps({"spec_path": str(specs[0]), "image": IMAGE, "upstream_steps": upstream,
                                    "environment": environment}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
