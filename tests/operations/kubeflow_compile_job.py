"""Compile the distill pipeline into a Kubeflow Pipelines spec, with no cluster.

Run by ``test_kubeflow_compile.py`` in its own process (``ZENML_CONFIG_PATH`` set to a
fresh folder), so the Kubeflow stack it registers never becomes another test's stack.

ZenML 0.98 has no compile-only switch for its Kubeflow orchestrator: submitting a
pipeline compiles the KFP spec into a YAML file, then uploads it. Here the orchestrator
points at a local port where nothing listens, so the upload fails (ZenML logs a
warning and returns) and the YAML file the real orchestrator wrote stays behind.
The stack is what ``deploy/kubeflow`` registers: Kubeflow orchestrator, S3 artifact
store, a remote container registry; no Docker build (the image is named, not built).

Usage: python kubeflow_compile_job.py OUT_JSON
Writes {"spec_path": ..., "upstream_steps": {step: [upstream steps]}} to OUT_JSON.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

IMAGE = "registry.example.com/fourds/fourds:compile-test"


def unused_local_url() -> str:
    """A URL on this machine where nothing listens: the upload is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/pipeline"


def register_kubeflow_stack() -> None:
    from zenml.client import Client
    from zenml.enums import StackComponentType as Kind

    client = Client()
    client.create_stack_component("kubeflow", "kubeflow", Kind.ORCHESTRATOR,
                                  {"kubeflow_hostname": unused_local_url()})
    client.create_stack_component("s3", "s3", Kind.ARTIFACT_STORE, {"path": "s3://fourds-artifacts"})
    client.create_stack_component("registry", "default", Kind.CONTAINER_REGISTRY,
                                  {"uri": "registry.example.com/fourds"})
    client.create_stack_component("docker", "local", Kind.IMAGE_BUILDER, {})
    client.create_stack("kubeflow", {Kind.ORCHESTRATOR: "kubeflow", Kind.ARTIFACT_STORE: "s3",
                                     Kind.CONTAINER_REGISTRY: "registry", Kind.IMAGE_BUILDER: "docker"})
    client.activate_stack("kubeflow")


def distill_pipeline_and_parameters():
    """The pipeline to compile and the parameters its entry point needs."""
    from zenml import pipeline, step

    # Stand-in with the distill pipeline's shape until pipelines/distill.py lands.
    @step
    def ingest_domain() -> str:
        return "md5"

    @step
    def validate_domain(domain: str) -> bool:
        return True

    @step
    def load_teacher(domain: str) -> str:
        return "teacher"

    @step
    def distill_student(domain: str, teacher: str, valid: bool) -> str:
        return "student"

    @step
    def evaluate_student(student: str, domain: str) -> float:
        return 1.0

    @step
    def export_onnx(student: str) -> str:
        return "onnx"

    @step
    def register_student(accuracy: float, onnx: str) -> str:
        return "1"

    @step
    def promote_student(version: str) -> bool:
        return True

    @pipeline(enable_cache=False)
    def distill():
        domain = ingest_domain()
        valid = validate_domain(domain)
        teacher = load_teacher(domain)
        student = distill_student(domain, teacher, valid)
        accuracy = evaluate_student(student, domain)
        onnx = export_onnx(student)
        promote_student(register_student(accuracy, onnx))

    return distill, {}


def main(out_json: Path) -> None:
    from zenml.client import Client
    from zenml.config import DockerSettings

    register_kubeflow_stack()
    distill, parameters = distill_pipeline_and_parameters()
    # The image is named, not built: no Docker daemon here. The code is in the image.
    docker = DockerSettings(skip_build=True, parent_image=IMAGE, allow_download_from_artifact_store=False,
                            allow_download_from_code_repository=False, allow_including_files_in_images=False)
    configured = distill.with_options(settings={"docker": docker})
    configured.prepare(**parameters)
    snapshot = configured.create_snapshot(name="kubeflow-compile-test")

    stack = Client().active_stack
    stack.submit_pipeline(snapshot)  # compiles the spec, then the upload fails: nothing listens

    specs = sorted(Path(stack.orchestrator.pipeline_directory).glob("*.yaml"))
    if len(specs) != 1:
        raise SystemExit(f"expected one compiled spec in {stack.orchestrator.pipeline_directory}, found {specs}")
    upstream = {name: list(step.spec.upstream_steps) for name, step in snapshot.step_configurations.items()}
    out_json.write_text(json.dumps({"spec_path": str(specs[0]), "image": IMAGE, "upstream_steps": upstream}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
