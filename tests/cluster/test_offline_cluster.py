"""Both pipelines the way a cluster runs them, offline: nothing shared on disk between steps.

The test starts a local S3-compatible server (moto) and an MLflow tracking server whose
artifacts live in it, registers a ZenML stack whose artifact store is that S3 bucket and
whose orchestrator runs every step in its own fresh process (empty working directory,
own HOME, own fourds workspace, deleted when the step ends: pipelines/fresh_process_orchestrator.py),
and points the data at a DVC remote in the same bucket. A teacher is trained, a student
distilled, and then ``fourds lineage --json`` run from yet another empty directory must
verify every link of the student's chain from MLflow, the artifact store and the DVC
remote alone. Every command runs as its own process, as a user or a pod would run it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tiny_domains import TINY, write_colour_domain

pytestmark = pytest.mark.slow

BUCKET = "fourds"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {seconds} s: {log.read_text()[-2000:]}")


def start(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            cwd=log.parent, start_new_session=True)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """moto's S3 on 127.0.0.1, a bucket, and ``mlflow server`` with its artifacts in the bucket; stopped after."""
    root = tmp_path_factory.mktemp("servers")
    s3_port, mlflow_port = free_port(), free_port()
    s3_url, mlflow_url = f"http://127.0.0.1:{s3_port}", f"http://127.0.0.1:{mlflow_port}"
    base = {**os.environ, **CREDENTIALS}
    processes = [start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
                       root / "moto.log", base)]
    try:
        wait_until_up(f"{s3_url}/moto-api/", processes[0], root / "moto.log")
        import boto3

        boto3.client("s3", endpoint_url=s3_url, **{k.lower(): v for k, v in CREDENTIALS.items()
                                                  if k != "AWS_DEFAULT_REGION"},
                     region_name="us-east-1").create_bucket(Bucket=BUCKET)
        mlflow_env = {**base, "MLFLOW_S3_ENDPOINT_URL": s3_url, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        processes.append(start(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--artifacts-destination", f"s3://{BUCKET}/mlflow", "--host", "127.0.0.1", "--port", str(mlflow_port),
             "--workers", "1"],
            root / "mlflow.log", mlflow_env))
        wait_until_up(f"{mlflow_url}/health", processes[1], root / "mlflow.log")
        yield {"s3": s3_url, "mlflow": mlflow_url, "root": root}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def cluster(servers, tmp_path_factory):
    """The client side: a ZenML store with the S3 artifact store and the fresh-process orchestrator as the active
    stack, a run configuration whose data goes to a DVC remote in the bucket, and the environment of every command."""
    root = tmp_path_factory.mktemp("cluster")
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith(("MLFLOW_", "ZENML_", "FOURDS_"))},
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": servers["s3"],
        "MLFLOW_TRACKING_URI": servers["mlflow"],
        "ZENML_CONFIG_PATH": str(root / "zenml"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "OMP_NUM_THREADS": "1",
    }
    register = f"""
from zenml.client import Client
from zenml.enums import StackComponentType as T
client = Client()
client.create_flavor(source="pipelines.fresh_process_orchestrator.FreshProcessOrchestratorFlavor",
                     component_type=T.ORCHESTRATOR)
client.create_stack_component(name="fresh", flavor="fresh_process", component_type=T.ORCHESTRATOR, configuration={{}})
client.create_stack_component(name="s3", flavor="s3", component_type=T.ARTIFACT_STORE,
                              configuration={{"path": "s3://{BUCKET}/zenml",
                                              "client_kwargs": {{"endpoint_url": "{servers['s3']}"}}}})
client.create_stack(name="offline-cluster", components={{T.ORCHESTRATOR: "fresh", T.ARTIFACT_STORE: "s3"}})
client.activate_stack("offline-cluster")
"""
    script = root / "register_stack.py"  # a file: ZenML takes the source root from the main module's path
    script.write_text(register)
    registered = subprocess.run([sys.executable, str(script)], env=env, cwd=root, capture_output=True, text=True)
    assert registered.returncode == 0, registered.stdout[-2000:] + registered.stderr[-3000:]
    config = {**TINY, "data": {**TINY["data"], "dvc_remote": f"s3://{BUCKET}/dvc"}}
    config_file = root / "cluster.yaml"
    config_file.write_text(yaml.safe_dump(config))
    return {"env": env, "config": config_file, "root": root}


def fourds(cluster, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run([str(Path(sys.executable).with_name("fourds")), *args], env=cluster["env"], cwd=cwd,
                          capture_output=True, text=True, timeout=1200)


def test_both_pipelines_run_with_every_step_in_its_own_process_and_the_lineage_checks_out_from_elsewhere(
    cluster, servers, tmp_path
):
    data = tmp_path / "data"  # read by the ingest steps, as a URL or a mounted volume would be
    source = write_colour_domain(data / "source", brightness=1.0, noise=12, seed=1)
    target = write_colour_domain(data / "target", brightness=0.6, noise=25, seed=2, unlabelled=6,
                                 rotate_channels=True)
    launcher = tmp_path / "launcher"  # the workspace of the machine that starts the runs

    trained = fourds(cluster, "teacher", "train", "--domain", "source", "--data", str(source),
                     "--workspace", str(launcher), "--config", str(cluster["config"]), cwd=launcher)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    distilled = fourds(cluster, "distill", "--domain", "target", "--data", str(target),
                       "--teacher", "fourds-teacher@source", "--workspace", str(launcher),
                       "--config", str(cluster["config"]), cwd=launcher)
    assert distilled.returncode in (0, 4), distilled.stdout[-3000:] + distilled.stderr[-3000:]
    assert "registered fourds-student-target version 1" in distilled.stdout

    # No step wrote into the launcher's workspace: no image, no run file, no DVC cache there.
    assert not list(launcher.rglob("*.png"))
    assert not [path for path in launcher.rglob("*") if path.is_file() and "runs" in path.parts]
    assert not (launcher / ".dvc").exists()

    auditor = tmp_path / "auditor"  # another machine: no access to any run's disk
    audit = fourds(cluster, "lineage", "fourds-student-target/1", "--json", "--workspace", str(auditor), cwd=auditor)
    chain = json.loads(audit.stdout or "{}")
    assert audit.returncode == 0, audit.stdout[-4000:] + audit.stderr[-3000:]
    links = {link["name"]: link for link in chain["links"]}
    assert {name: link["status"] for name, link in links.items()} == dict.fromkeys(links, "ok")
    assert links["data"]["facts"]["dvc_remote"] == f"s3://{BUCKET}/dvc"
    assert set(links["ZenML run"]["facts"]["steps"].values()) == {"completed"}
