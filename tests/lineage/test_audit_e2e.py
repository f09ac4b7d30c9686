"""``fourds watch`` runs the real distill pipeline, then ``fourds lineage`` audits what it registered.

The real local stack, nothing mocked: ZenML local store, MLflow on SQLite, DVC, Great
Expectations, onnxruntime, on tiny generated colour images. A teacher is trained first;
``fourds watch`` then finds the new target domain and distils it; the audit of the
registered student must be complete and agree with the run; tampering with the stored
ONNX file, or losing the validation result, must make it fail.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from fourds.config import RunConfig, load_config
from fourds.operations.watch import load_state
from fourds.workspace import Workspace
from fourds_app.cli import main

pytestmark = pytest.mark.slow

COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (50, 60, 210)}
TINY = {
    "method": "4ds",
    # no_maxpool keeps 2x2 last-stage maps at 32 px, so fusion-activation has something to align
    "model": {"teacher_arch": "resnet18", "student_arch": "resnet18", "stem": "no_maxpool"},
    "data": {"image_size": 32, "resize_size": None, "random_crop": False, "horizontal_flip": False,
             "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "val_fraction": 0.2, "test_fraction": 0.3,
             "batch_size": 8, "eval_batch_size": 64},
    "train": {"max_steps": 4, "progress": False, "device": "cpu"},
    "teacher_train": {"max_steps": 4, "progress": False, "device": "cpu"},
    "export": {"latency_batch_sizes": [1], "latency_repeats": 2},
}
DISTILL_STEPS = {"start_run", "ingest_data", "load_teacher", "validate_data", "distill_student", "evaluate_models",
                 "export_onnx", "register_student", "promote_student"}


def write_colour_domain(folder: Path, *, brightness: float, noise: float, seed: int, per_class: int = 16) -> Path:
    rng = np.random.default_rng(seed)
    for name, rgb in COLOURS.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = np.array(rgb, dtype=np.float32) * brightness + rng.normal(0, noise, (32, 32, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / name / f"{index:03d}.png")
    return folder


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as finished:
        main(list(args))
    captured = capsys.readouterr()
    return finished.value.code, captured.out, captured.err


@dataclass
class WatchedRun:
    workspace: Workspace
    config: RunConfig
    config_file: Path
    teacher: object
    teacher_ingested: object
    student_model: str
    state: dict
    watch_output: str

    def lineage(self, capsys, reference: str | None = None) -> tuple[int, dict, str]:
        # The challenger: always the newest version, whether or not the gates promoted it.
        code, out, err = run_cli(capsys, "lineage", reference or f"{self.student_model}@challenger", "--json",
                                 "--workspace", str(self.workspace.root), "--config", str(self.config_file))
        return code, json.loads(out), err

    def registered_onnx_file(self) -> Path:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.workspace.tracking_uri(), registry_uri=self.workspace.tracking_uri())
        version = client.get_model_version(self.student_model, self.state["model_version"])
        model_id = version.source.removeprefix("models:/")
        location = Path(client.get_logged_model(model_id).artifact_location.removeprefix("file://"))
        (onnx_file,) = location.rglob("*.onnx")
        return onnx_file


@pytest.fixture(scope="module")
def watched(zenml_store, tmp_path_factory) -> WatchedRun:
    from pipelines.train_teacher import run_train_teacher

    root = tmp_path_factory.mktemp("lineage-e2e")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        workspace = Workspace(root / "workspace")
        _git_init(workspace.root)
        workspace.ensure()
        config = load_config(overrides=TINY)
        config_file = root / "tiny.yaml"
        config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))

        teacher_source = write_colour_domain(root / "teacher-source", brightness=1.0, noise=12, seed=1)
        teacher_outcome = run_train_teacher(config, domain="colours-source", data_source=str(teacher_source),
                                            workspace=workspace)
        teacher = teacher_outcome.outputs["registered_teacher"]

        domains = root / "domains"
        write_colour_domain(domains / "colours", brightness=0.6, noise=25, seed=2)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as finished:
            main(["watch", "--source", str(domains), "--teacher", f"{teacher.model_name}/{teacher.version}",
                  "--workspace", str(workspace.root), "--config", str(config_file)])
        out, err = out.getvalue(), err.getvalue()
        # 4: the run succeeded and its 4-step student was registered, but the promotion gates (minimum
        # accuracy, source teacher) may keep it a challenger; the audit below is of that version either way.
        assert finished.value.code in (0, 4), f"watch failed:\n{out}\n{err}"
        assert ("not promoted" in out) == (finished.value.code == 4), out
        state = load_state(workspace)["colours"]
        yield WatchedRun(workspace, config, config_file, teacher, teacher_outcome.outputs["ingested_domain"],
                         f"{config.tracking.student_model_prefix}colours", state, out)


def _git_init(folder: Path) -> None:
    """The workspace is a git repository, as a project checkout is: data lineage records its revision."""
    folder.mkdir(parents=True, exist_ok=True)
    for command in (["git", "init", "-q"],
                    ["git", "-c", "user.name=fourds-test", "-c", "user.email=test@fourds.invalid",
                     "commit", "-q", "--allow-empty", "-m", "workspace"]):
        subprocess.run(command, cwd=folder, check=True, capture_output=True)


@contextlib.contextmanager
def hidden(path: Path):
    """``path`` is gone for the block, then back as it was."""
    moved = path.with_name(path.name + ".hidden")
    path.rename(moved)
    try:
        yield
    finally:
        moved.rename(path)


def links_of(audit: dict) -> dict[str, dict]:
    return {link["name"]: link for link in audit["links"]}


def test_watch_ran_the_real_pipeline_once_for_the_new_domain(watched, capsys):
    assert "new        colours" in watched.watch_output
    assert "ok         colours" in watched.watch_output and watched.state["model_version"] == "1"

    code, out, _ = run_cli(capsys, "watch", "--source", str(Path(watched.state["folder"]).parent),
                           "--workspace", str(watched.workspace.root), "--config", str(watched.config_file))
    assert code == 0
    assert "unchanged  colours" in out and "0 run(s)" in out

    # The workspace's data folder now holds the teacher's source domain too: never a target.
    code, out, _ = run_cli(capsys, "watch", "--dry-run", "--workspace", str(watched.workspace.root))
    assert code == 0
    assert "excluded   colours-source  (a registered teacher's source domain)" in out


def test_lineage_of_the_watched_run_is_complete_and_consistent_with_it(watched, capsys):
    from zenml.client import Client

    code, audit, err = watched.lineage(capsys)
    links = links_of(audit)
    broken = {name: (link["missing"], link["mismatches"]) for name, link in links.items() if link["status"] != "ok"}

    assert code == 0 and audit["complete"], f"incomplete lineage: {broken}\n{err}"
    assert audit["version"] == watched.state["model_version"]
    assert list(links) == ["registry version", "MLflow run", "ZenML run", "data", "validation (Great Expectations)",
                           "teacher", "code and configuration", "ONNX"]

    run = Client().get_pipeline_run(watched.state["run_name"])
    assert links["ZenML run"]["facts"]["run_name"] == run.name
    assert set(links["ZenML run"]["facts"]["steps"]) == DISTILL_STEPS
    assert set(links["ZenML run"]["facts"]["steps"].values()) == {"completed"}
    ingested = run.steps["ingest_data"].outputs["ingested_domain"][0].load()
    assert links["data"]["facts"]["domain_md5"] == ingested.domain_md5
    assert links["data"]["facts"]["data_md5"] == ingested.data_md5
    assert links["data"]["facts"]["git_revision"] == ingested.git_revision is not None
    assert links["data"]["facts"]["unlabelled_images"] == ingested.unlabelled_images == 0  # checked against the table
    assert links["data"]["facts"]["unlabelled_images_used"] == 0
    assert links["teacher"]["facts"]["version"] == watched.teacher.version
    assert links["teacher"]["facts"]["training_data_md5"] == watched.teacher_ingested.domain_md5
    assert links["code and configuration"]["facts"]["config_hash"] == watched.config.config_hash()
    onnx = run.steps["export_onnx"].outputs["onnx_model"][0].load()
    assert links["ONNX"]["facts"]["sha256"] == links["ONNX"]["facts"]["rehashed_sha256"] == onnx.sha256
    assert links["validation (Great Expectations)"]["facts"]["success"] is True


def test_text_report_names_every_link(watched, capsys):
    code, out, _ = run_cli(capsys, "lineage", f"{watched.student_model}/{watched.state['model_version']}",
                           "--workspace", str(watched.workspace.root), "--config", str(watched.config_file))

    assert code == 0
    assert out.splitlines()[0].startswith(f"lineage of {watched.student_model} version 1")
    assert out.count("[OK      ]") == 8
    assert out.strip().endswith("lineage complete: every link checked and consistent")


def test_unknown_model_version_is_a_usage_error(watched, capsys):
    code, _, err = run_cli(capsys, "lineage", f"{watched.student_model}/99", "--workspace", str(watched.workspace.root))

    assert code == 2
    assert "has no version 99" in err


def test_missing_validation_result_is_reported_missing(watched, capsys):
    from mlflow import MlflowClient

    code, audit, _ = watched.lineage(capsys)
    uri = links_of(audit)["validation (Great Expectations)"]["facts"]["result"]
    run_id, artifact = uri.removeprefix("runs:/").split("/", 1)
    client = MlflowClient(tracking_uri=watched.workspace.tracking_uri())
    result_file = Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://")) / artifact
    with hidden(result_file):
        code, audit, _ = watched.lineage(capsys)

    link = links_of(audit)["validation (Great Expectations)"]
    assert code == 1 and not audit["complete"]
    assert link["status"] == "missing"
    assert link["missing"][0].startswith(f"validation result {uri} cannot be read from MLflow")


# Each recorded fact that disagrees with the system that owns it: (tag, false value, link, status, words).
TAMPERED_FACTS = [
    ("fourds.data_domain_md5", "0" * 32 + ".dir", "data", "mismatch", "domain md5"),
    ("fourds.table_sha256", "0" * 64, "data", "mismatch", "images.csv sha256"),
    ("fourds.teacher_data_md5", "0" * 32 + ".dir", "teacher", "mismatch", "teacher training-data md5"),
    ("fourds.config_hash", "0" * 64, "code and configuration", "mismatch", "config"),
    ("fourds.zenml_run_id", "00000000-0000-0000-0000-000000000000", "ZenML run", "missing", "not in the active ZenML store"),
    ("fourds.gx_success", "false", "validation (Great Expectations)", "mismatch", "failed validation"),
]


@pytest.mark.parametrize(("tag", "value", "link_name", "status", "words"), TAMPERED_FACTS,
                         ids=[fact[0].removeprefix("fourds.") for fact in TAMPERED_FACTS])
def test_a_fact_that_disagrees_with_its_owner_fails_the_audit_naming_the_link(
    watched, capsys, tag, value, link_name, status, words
):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=watched.workspace.tracking_uri(), registry_uri=watched.workspace.tracking_uri())
    name, version = watched.student_model, watched.state["model_version"]
    saved = client.get_model_version(name, version).tags[tag]
    client.set_model_version_tag(name, version, tag, value)
    try:
        code, audit, _ = watched.lineage(capsys, f"{name}/{version}")
    finally:
        client.set_model_version_tag(name, version, tag, saved)

    link = links_of(audit)[link_name]
    assert code == 1 and not audit["complete"]
    assert link["status"] == status, link
    assert any(words in problem for problem in link["missing"] + link["mismatches"]), link


def test_a_data_object_missing_from_the_dvc_remote_is_reported_missing(watched, capsys):
    from fourds.data.versioning import default_remote

    import hashlib

    # An image of the audited domain (the remote also holds the teacher's source domain).
    image = next(watched.workspace.domain_dir("colours").rglob("*.png"))
    digest = hashlib.md5(image.read_bytes()).hexdigest()
    stored = Path(default_remote(watched.workspace)) / "files" / "md5" / digest[:2] / digest[2:]
    assert stored.is_file(), "premise: the ingest pushed the domain's images to the workspace's default DVC remote"
    with hidden(stored):
        code, audit, _ = watched.lineage(capsys)

    link = links_of(audit)["data"]
    assert code == 1 and not audit["complete"]
    assert link["status"] == "missing" and "from the DVC remote" in link["missing"][0], link


def test_an_mlflow_run_that_did_not_finish_fails_the_audit(watched, capsys):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=watched.workspace.tracking_uri())
    run_id = client.get_model_version(watched.student_model, watched.state["model_version"]).run_id
    client.set_terminated(run_id, "FAILED")
    try:
        code, audit, _ = watched.lineage(capsys)
    finally:
        client.set_terminated(run_id, "FINISHED")

    link = links_of(audit)["MLflow run"]
    assert code == 1 and link["status"] == "mismatch"
    assert link["mismatches"] == [f"MLflow run {run_id} has status FAILED, not FINISHED"]


def test_tampered_onnx_file_is_reported_as_a_mismatch(watched, capsys):
    onnx_file = watched.registered_onnx_file()
    original = onnx_file.read_bytes()
    onnx_file.write_bytes(original + b"\0")
    try:
        code, audit, _ = watched.lineage(capsys)
    finally:
        onnx_file.write_bytes(original)

    link = links_of(audit)["ONNX"]
    assert code == 1 and not audit["complete"]
    assert link["status"] == "mismatch"
    assert link["facts"]["rehashed_sha256"] != link["facts"]["sha256"]
    assert "hashes to" in link["mismatches"][0] and link["facts"]["sha256"] in link["mismatches"][0]
    others = [link["status"] for name, link in links_of(audit).items() if name != "ONNX"]
    assert set(others) == {"ok"}


def test_a_version_registered_before_unlabelled_counts_existed_audits_complete_with_a_note(watched, capsys):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=watched.workspace.tracking_uri(), registry_uri=watched.workspace.tracking_uri())
    name, version = watched.student_model, watched.state["model_version"]
    keys = ("fourds.data_unlabelled_images", "fourds.data_unlabelled_images_used")
    saved = {key: client.get_model_version(name, version).tags[key] for key in keys}
    for key in keys:
        client.delete_model_version_tag(name, version, key)
    try:
        code, audit, err = watched.lineage(capsys, f"{name}/{version}")
    finally:
        for key, value in saved.items():
            client.set_model_version_tag(name, version, key, value)

    data = links_of(audit)["data"]
    assert code == 0 and audit["complete"], (data, err)
    assert data["status"] == "ok" and data["facts"]["unlabelled_images"] is None
    assert any("registered before fourds counted unlabelled images" in note for note in data["notes"])
