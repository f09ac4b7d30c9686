"""Both pipelines end to end on the real local stack: ZenML local store, MLflow on SQLite,
DVC, Great Expectations and onnxruntime, on tiny generated data. Nothing is mocked.

One workspace serves the whole module (ZenML and MLflow start-up dominate a tiny run):
a teacher is trained and registered, a first student is distilled (the target domain
also holds a few unlabelled images) and becomes champion; later tests add a weaker run,
a near-chance first version that the default promotion gates refuse, and a run whose
data fails validation.
"""

from __future__ import annotations

import copy
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
import yaml
from PIL import Image

from fourds.config import RunConfig, load_config
from fourds.lineage.record import LineageRecord
from fourds.workspace import Workspace
from tiny_domains import COLOURS, TINY, UNLABELLED_IMAGES, write_colour_domain

pytestmark = pytest.mark.slow

# The weaker second run: the same pipeline, data and budget, but the student's learning
# rate is so small that it keeps its random initialisation (chance level, 1/3), while the
# first student learnt the colours. Training is seeded and deterministic, so this is
# repeatable; the test checks the premise (lower accuracy) before checking the aliases.
FROZEN_STUDENT_LR = 1.0e-9


def tiny_config(student_lr: float | None = None) -> RunConfig:
    overrides = copy.deepcopy(TINY)
    if student_lr is not None:
        overrides["train"]["optimizers"]["student"]["lr"] = student_lr
    return load_config(overrides=overrides)


@dataclass
class Stack:
    workspace: Workspace
    config: RunConfig
    sources: dict[str, Path]
    teacher_outcome: object
    first_outcome: object

    @property
    def student_model(self) -> str:
        return self.first_outcome.outputs["registered_version"].model_name

    def mlflow(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.workspace.tracking_uri(), registry_uri=self.workspace.tracking_uri())


def git_init(folder: Path) -> None:
    """The workspace is a git repository, as a project checkout is: data lineage records its revision."""
    folder.mkdir(parents=True, exist_ok=True)
    for command in (
        ["git", "init", "-q"],
        ["git", "-c", "user.name=fourds-test", "-c", "user.email=test@fourds.invalid",
         "commit", "-q", "--allow-empty", "-m", "workspace"],
    ):
        subprocess.run(command, cwd=folder, check=True, capture_output=True)


@pytest.fixture(scope="module")
def stack(zenml_store, tmp_path_factory, monkeypatch_module) -> Stack:
    from pipelines.distill import run_distill
    from pipelines.train_teacher import run_train_teacher

    root = tmp_path_factory.mktemp("e2e")
    monkeypatch_module.delenv("MLFLOW_TRACKING_URI", raising=False)
    workspace = Workspace(root / "workspace")
    git_init(workspace.root)
    workspace.ensure()
    sources = {
        "source": write_colour_domain(root / "sources" / "source", brightness=1.0, noise=12, seed=1),
        "target": write_colour_domain(root / "sources" / "target", brightness=0.6, noise=25, seed=2,
                                      unlabelled=UNLABELLED_IMAGES, rotate_channels=True),
    }
    config = tiny_config()
    teacher_outcome = run_train_teacher(config, domain="colours-source", data_source=str(sources["source"]),
                                        workspace=workspace)
    teacher = teacher_outcome.outputs["registered_teacher"]
    first_outcome = run_distill(config, domain="colours", data_source=str(sources["target"]), workspace=workspace,
                                teacher=f"{teacher.model_name}/{teacher.version}")
    return Stack(workspace, config, sources, teacher_outcome, first_outcome)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_teacher_is_registered_with_its_classes_and_data_md5(stack):
    from fourds.registry import load_teacher
    from fourds.tracking import configure_mlflow

    configure_mlflow(stack.workspace)
    registered = stack.teacher_outcome.outputs["registered_teacher"]
    ingested = stack.teacher_outcome.outputs["ingested_domain"]
    teacher = load_teacher(f"{registered.model_name}/{registered.version}")
    tags = stack.mlflow().get_model_version(registered.model_name, registered.version).tags

    assert registered.model_name == "fourds-teacher"
    assert teacher.classes == sorted(COLOURS)
    assert teacher.data_md5 == ingested.domain_md5
    assert tags["fourds.zenml_run_id"] == stack.teacher_outcome.run_id


def test_student_version_carries_every_lineage_fact(stack):
    outputs = stack.first_outcome.outputs
    registered = outputs["registered_version"]
    tags = stack.mlflow().get_model_version(registered.model_name, registered.version).tags
    lineage = LineageRecord.from_tags(tags)
    ingested = outputs["ingested_domain"]
    teacher = stack.teacher_outcome.outputs["registered_teacher"]

    assert lineage.missing() == []
    assert lineage.data_domain_md5 == ingested.domain_md5
    assert lineage.data_md5 == ingested.data_md5
    assert lineage.data_git_revision == ingested.git_revision is not None
    assert (lineage.teacher_model_name, lineage.teacher_version) == (teacher.model_name, teacher.version)
    assert lineage.teacher_data_md5 == stack.teacher_outcome.outputs["ingested_domain"].domain_md5
    assert lineage.code_commit and lineage.code_commit != "unknown"
    assert lineage.config_hash == stack.config.config_hash()
    assert lineage.zenml_run_id == stack.first_outcome.run_id
    assert lineage.gx_success is True
    assert lineage.onnx_sha256 == outputs["onnx_model"].sha256
    assert lineage.metric("test_accuracy") == outputs["evaluation"].metrics["test/student/accuracy"]
    assert lineage.metric("onnx_parity_max_abs_diff") == outputs["onnx_model"].parity_max_abs_diff
    # The scratch guard ran on the validation split and its choice is on the version.
    trained = outputs["trained_models"]
    assert lineage.method == "4ds" and lineage.student_method == trained.student_method
    assert lineage.guard == trained.guard and lineage.guard.startswith(f"kept {trained.student_method}: validation")
    assert ("distilled_student" in trained.weights) == (trained.student_method == "student_scratch")
    assert "test/distilled_student/accuracy" in outputs["evaluation"].metrics or trained.student_method == "4ds"


def test_unlabelled_images_are_used_and_recorded_in_mlflow_lineage_and_status(stack):
    from fourds.registry import domain_status
    from fourds.tracking import configure_mlflow

    outputs = stack.first_outcome.outputs
    registered = outputs["registered_version"]
    lineage = LineageRecord.from_tags(stack.mlflow().get_model_version(registered.model_name, registered.version).tags)
    params = stack.mlflow().get_run(lineage.mlflow_run_id).data.params

    assert outputs["ingested_domain"].unlabelled_images == UNLABELLED_IMAGES
    # 4ds with the default data.unlabelled_batch_ratio (1.0) draws from all of them.
    assert outputs["trained_models"].unlabelled_images_used == UNLABELLED_IMAGES
    assert (lineage.data_unlabelled_images, lineage.data_unlabelled_images_used) == (UNLABELLED_IMAGES,) * 2
    assert params["data.unlabelled_images"] == params["data.unlabelled_images_used"] == str(UNLABELLED_IMAGES)
    configure_mlflow(stack.workspace)
    [colours] = [row for row in domain_status() if row.domain == "colours"]
    assert (colours.champion_unlabelled_images, colours.champion_unlabelled_images_used) == (UNLABELLED_IMAGES,) * 2


def test_run_artifacts_are_linked_to_the_zenml_model_version(stack):
    from zenml.client import Client

    client = Client()
    run = client.get_pipeline_run(stack.first_outcome.run_id)
    model_version = client.get_model_version(stack.student_model, run.model_version.number)
    links = client.list_model_version_artifact_links(model_version_id=model_version.id, size=100).items

    assert {link.artifact_version.artifact.name for link in links} >= {
        "ingested_domain", "validation", "trained_models", "evaluation", "onnx_model", "registered_version"}
    assert model_version.run_metadata["mlflow_version"] == stack.first_outcome.outputs["registered_version"].version


def test_onnx_file_reproduces_the_pytorch_student(stack):
    from fourds.models import load_classifier

    outputs = stack.first_outcome.outputs
    student, _ = load_classifier(outputs["trained_models"].weights["student"])
    images = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = student.eval()(images).numpy()
    session = onnxruntime.InferenceSession(outputs["onnx_model"].path, providers=["CPUExecutionProvider"])
    actual = session.run(None, {session.get_inputs()[0].name: images.numpy()})[0]

    assert np.abs(actual - expected).max() <= stack.config.promotion.max_parity_abs_diff


def test_first_student_is_champion_and_beats_the_source_teacher_and_the_minimum(stack):
    promotion = stack.first_outcome.outputs["promotion"]
    metrics = stack.first_outcome.outputs["evaluation"].metrics
    accuracy = metrics["test/student/accuracy"]
    registered = stack.first_outcome.outputs["registered_version"]
    version = stack.mlflow().get_model_version(stack.student_model, registered.version)

    assert accuracy > metrics["test/source_teacher/accuracy"], "premise: the source teacher is poor on the target"
    assert accuracy >= stack.config.promotion.min_accuracy
    assert promotion.promoted, promotion.reasons
    assert [reason.split(":")[0] for reason in promotion.reasons] == [
        "PASS minimum", "PASS source teacher", "PASS champion", "PASS parity", "PASS latency", "PASS size"]
    assert str(stack.mlflow().get_model_version_by_alias(stack.student_model, "champion").version) == (
        registered.version)
    # The version page says what it is and why it was promoted.
    assert version.description.startswith(f"**colours** student, method **{registered.tags['fourds.student_method']}")
    assert f"test accuracy **{accuracy:.4f}**" in version.description
    assert "Promotion: **promoted to champion**" in version.description
    assert version.tags["fourds.promotion.decision"] == "promoted"


def test_weaker_second_run_becomes_challenger_not_champion(stack):
    from pipelines.distill import run_distill

    first = stack.first_outcome.outputs
    weaker_config = tiny_config(student_lr=FROZEN_STUDENT_LR)
    second = run_distill(weaker_config, domain="colours", data_source=str(stack.sources["target"]),
                         workspace=stack.workspace, teacher=first["teacher"].registered_name)
    client = stack.mlflow()

    first_accuracy = first["evaluation"].metrics["test/student/accuracy"]
    second_accuracy = second.outputs["evaluation"].metrics["test/student/accuracy"]
    assert second_accuracy < first_accuracy, "premise: the frozen student must score lower"
    evaluation = second.outputs["evaluation"]
    assert evaluation.champion.version == first["registered_version"].version
    # The champion was re-scored on this run's test split (the same data here: the same figure),
    # and that figure is what the champion gate compared.
    assert evaluation.champion.accuracy == pytest.approx(first_accuracy)
    assert evaluation.champion.problem is None
    assert evaluation.metrics["test/champion/accuracy"] == evaluation.champion.accuracy
    promotion = second.outputs["promotion"]
    assert not promotion.promoted
    assert promotion.reasons[2].startswith(f"FAIL champion: {second_accuracy:.4f} < champion v")
    assert "re-scored on this run's test split" in promotion.reasons[2]
    second_version = second.outputs["registered_version"].version
    assert str(client.get_model_version_by_alias(stack.student_model, "challenger").version) == second_version
    assert str(client.get_model_version_by_alias(stack.student_model, "champion").version) == (
        first["registered_version"].version
    )


def test_the_runs_description_says_what_its_version_page_says(stack):
    client = stack.mlflow()
    registered = stack.first_outcome.outputs["registered_version"]
    version = client.get_model_version(registered.model_name, registered.version)

    assert version.description.startswith("**colours** student, method **")
    assert client.get_run(version.run_id).data.tags["mlflow.note.content"] == version.description


def test_run_whose_data_fails_validation_registers_nothing(stack, tmp_path):
    from pipelines.distill import run_distill
    from pipelines.launch import PipelineRunFailed

    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(stack.sources["target"]), str(broken)], check=True)
    (broken / "red" / "005.png").write_bytes(b"this is not a PNG file")
    client = stack.mlflow()
    versions_before = {str(v.version) for v in client.search_model_versions(f"name='{stack.student_model}'")}

    with pytest.raises(PipelineRunFailed) as failure:
        run_distill(stack.config, domain="colours", data_source=str(broken), workspace=stack.workspace,
                    teacher="fourds-teacher")

    assert failure.value.step == "validate_data"
    assert "red/005.png" in str(failure.value)
    versions_after = {str(v.version) for v in client.search_model_versions(f"name='{stack.student_model}'")}
    assert versions_after == versions_before
    [mlflow_run] = client.search_runs(
        [client.get_experiment_by_name("fourds-colours").experiment_id],
        filter_string=f"attributes.run_name = '{failure.value.run_name}'",
    )
    assert mlflow_run.info.status == "FAILED"
    assert mlflow_run.data.tags["fourds.gx_success"] == "false"


def test_a_run_that_fails_before_validation_ends_its_mlflow_run_failed(stack, tmp_path):
    """An ingest failure (here: a domain with no images) leaves no FINISHED MLflow run behind (issue 14, item 4)."""
    from pipelines.distill import run_distill
    from pipelines.launch import PipelineRunFailed

    empty = tmp_path / "empty"
    (empty / "red").mkdir(parents=True)
    with pytest.raises(PipelineRunFailed) as failure:
        run_distill(stack.config, domain="colours", data_source=str(empty), workspace=stack.workspace,
                    teacher="fourds-teacher")

    assert failure.value.step == "ingest_data"
    client = stack.mlflow()
    [mlflow_run] = client.search_runs(
        [client.get_experiment_by_name("fourds-colours").experiment_id],
        filter_string=f"attributes.run_name = '{failure.value.run_name}'",
    )
    assert mlflow_run.info.status == "FAILED"


def test_cli_reports_a_validation_failure_with_the_file_and_exit_1(stack, tmp_path, capsys):
    from fourds_app.cli import main

    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(stack.sources["target"]), str(broken)], check=True)
    (broken / "green" / "007.png").write_bytes(b"")
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(stack.config.model_dump(mode="json")))

    with pytest.raises(SystemExit) as finished:
        main(["distill", "--domain", "colours", "--data", str(broken), "--workspace", str(stack.workspace.root),
              "--config", str(config_file)])
    err = capsys.readouterr().err

    assert finished.value.code == 1
    error_lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1
    assert "validate_data" in error_lines[0]
    assert "green/007.png" in err
    assert "Traceback" not in err


def test_cli_summary_points_at_the_champion_files(stack, capsys):
    from fourds_app.report import print_distill_result
    from fourds_app.session import Session

    assert print_distill_result(Session(stack.workspace, stack.config, None), stack.first_outcome) is True
    out = capsys.readouterr().out

    files_line = next(line for line in out.splitlines() if "its files:" in line)
    champion_dir = Path(files_line.split("its files:")[1].split("/ (")[0].strip())
    assert (champion_dir / "model.onnx").is_file()
    assert (champion_dir / "student.safetensors").is_file()
    assert stack.first_outcome.outputs["onnx_model"].path in out
    assert "source_teacher: " in out and "promoted to champion: version" in out


def test_cli_refuses_a_near_chance_first_version_with_the_default_gates_and_exit_4(stack, tmp_path, capsys):
    """With the default promotion settings, a chance-level first student of a domain is never crowned."""
    from fourds_app.cli import main

    frozen = tiny_config(student_lr=FROZEN_STUDENT_LR).model_dump(mode="json")
    frozen["promotion"]["min_accuracy"] = None  # the default: (1 + 1/3) / 2 for three classes
    config_file = tmp_path / "frozen.yaml"
    config_file.write_text(yaml.safe_dump(frozen))

    with pytest.raises(SystemExit) as finished:
        main(["distill", "--domain", "colours-frozen", "--data", str(stack.sources["target"]),
              "--teacher", "fourds-teacher", "--workspace", str(stack.workspace.root), "--config", str(config_file)])
    out = capsys.readouterr().out

    assert finished.value.code == 4, out
    assert "not promoted: version 1 stays challenger (exit status 4)" in out
    assert "FAIL minimum" in out and "< 0.6667 (default (1 + 1/3) / 2)" in out
    assert "champion: none yet" in out
    model = stack.mlflow().get_registered_model("fourds-student-colours-frozen")
    assert "champion" not in model.aliases and str(model.aliases["challenger"]) == "1"


def test_fourds_predict_labels_test_images_as_the_evaluation_step_does(stack, tmp_path, capsys):
    """The registered champion and the exported ONNX file, through ``fourds predict``, against the student's
    predictions on the test split computed as the evaluation step computes them."""
    from fourds_app.cli import main
    from fourds.evaluation.predict import predict_logits
    from fourds.models import load_classifier
    from fourds.runs.data import run_splits

    outputs = stack.first_outcome.outputs
    ingested = outputs["ingested_domain"]
    test_set = run_splits(outputs["run_context"], ingested, stack.config, outputs["trained_models"].classes).test
    student, _ = load_classifier(outputs["trained_models"].weights["student"])
    logits, _ = predict_logits(student, test_set)
    expected = [outputs["trained_models"].classes[i] for i in logits.argmax(dim=1).tolist()]
    images = [str(Path(ingested.images_dir) / path) for path in test_set.paths]

    for reference in (f"{stack.student_model}@champion", outputs["onnx_model"].path):
        with pytest.raises(SystemExit) as finished:
            main(["predict", reference, *images, "--json", "--workspace", str(stack.workspace.root)])
        captured = capsys.readouterr()
        assert finished.value.code == 0, captured.err
        predicted = json.loads(captured.out)
        assert [p["image"] for p in predicted] == images
        assert [p["label"] for p in predicted] == expected, reference


def test_the_champion_and_the_teacher_load_with_plain_mlflow_pyfunc(stack):
    """Both registered models, loaded with plain ``mlflow.pyfunc`` and given the test split's images as a uint8
    batch, label them as the evaluation step did (its weights, its transform, the same split)."""
    import mlflow

    from fourds.evaluation.predict import predict_logits
    from fourds.models import load_classifier
    from fourds.tracking import configure_mlflow
    from fourds.runs.data import run_splits

    configure_mlflow(stack.workspace)
    outputs = stack.first_outcome.outputs
    ingested, classes = outputs["ingested_domain"], outputs["trained_models"].classes
    test_set = run_splits(outputs["run_context"], ingested, stack.config, classes).test
    images = np.stack([np.asarray(Image.open(Path(ingested.images_dir) / path).convert("RGB"))
                       for path in test_set.paths])
    teacher = stack.teacher_outcome.outputs["registered_teacher"]
    assert str(stack.mlflow().get_model_version_by_alias(stack.student_model, "champion").version) == (
        outputs["registered_version"].version)

    for uri, evaluated_weights in (
        (f"models:/{stack.student_model}@champion", outputs["trained_models"].weights["student"]),
        (f"models:/{teacher.model_name}/{teacher.version}", outputs["teacher"].weights_path),  # the source teacher
    ):
        logits, _ = predict_logits(load_classifier(evaluated_weights)[0], test_set)
        predicted = mlflow.pyfunc.load_model(uri).predict(images)

        assert len(predicted) == len(test_set) > 0
        assert predicted["label"].tolist() == [classes[i] for i in logits.argmax(dim=1).tolist()], uri
        assert np.allclose(predicted["probability"], torch.softmax(logits, dim=1).max(dim=1).values.numpy(),
                           atol=1e-4), uri


def test_the_mlflow_run_shows_each_stage_datasets_and_the_commit(stack):
    outputs = stack.first_outcome.outputs
    client = stack.mlflow()
    run_id = outputs["registered_version"].tags["fourds.mlflow_run_id"]
    run = client.get_run(run_id)

    training = {a.path for a in client.list_artifacts(run_id, "training")}
    assert {"training/learning_curves.png", "training/history.json"} <= training  # the 4Ds student's own
    guard = {a.path for a in client.list_artifacts(run_id, "training/scratch_guard")}
    assert "training/scratch_guard/learning_curves.png" in guard
    assert client.list_artifacts(run_id, "plots") == []  # the evaluation plots are logged once, under evaluation/
    assert "evaluation/student_confusion.png" in {a.path for a in client.list_artifacts(run_id, "evaluation")}
    datasets = {i.dataset.name: i.dataset.digest for i in run.inputs.dataset_inputs}
    assert datasets == {f"colours/{split}": outputs["ingested_domain"].domain_md5
                        for split in ("train", "val", "test", "unlabelled")}
    commit = run.data.tags["mlflow.source.git.commit"]
    assert commit == run.data.tags["fourds.code_commit"] and commit not in ("", "unknown")


def test_manual_promote_and_rollback_are_audited(stack, capsys):
    from fourds_app.cli import main
    from fourds.registry import alias_history

    model = stack.student_model
    champion = str(stack.mlflow().get_model_version_by_alias(model, "champion").version)
    challenger = str(stack.mlflow().get_model_version_by_alias(model, "challenger").version)
    assert challenger != champion, "the weaker run's version must still be the challenger"
    workspace = ["--workspace", str(stack.workspace.root)]

    for args in (["promote", model, challenger, "--reason", "field test", "--who", "alice"],
                 ["rollback", model, "--reason", "field test failed"]):
        with pytest.raises(SystemExit) as finished:
            main([*args, *workspace])
        assert finished.value.code == 0, capsys.readouterr().err

    assert str(stack.mlflow().get_model_version_by_alias(model, "champion").version) == champion
    promote_entry, rollback_entry = alias_history(model, "champion")[-2:]
    assert (promote_entry["version"], promote_entry["who"], promote_entry["reason"]) == (
        challenger, "alice", "field test")
    assert rollback_entry["version"] == champion
    assert rollback_entry["reason"] == "field test failed"
