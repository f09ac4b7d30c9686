import json
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import pytest
import torch
import torch.nn.functional as F
import yaml
from mlflow import MlflowClient
from torch import nn
from torch.utils.data import TensorDataset

from fourds.config import RunConfig, TrackingConfig, TrainConfig, load_config
from fourds.method.base import Method, StepOutput
from fourds.models.zoo import build_classifier
from fourds.tracking import CONFIG_ARTIFACT, configure_mlflow, experiment_for_domain, log_config, log_domain_datasets
from fourds.tracking.run_log import flatten_params
from fourds.tracking.training import MlflowMetricsCallback
from fourds.training.trainer import Trainer
from fourds.workspace import Workspace


def test_default_store_is_sqlite_in_the_workspace_and_env_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    workspace = Workspace(tmp_path / "ws")

    uri = configure_mlflow(workspace, TrackingConfig())
    assert uri == f"sqlite:///{workspace.mlflow_db}"
    assert mlflow.get_tracking_uri() == uri and mlflow.get_registry_uri() == uri
    assert workspace.mlflow_artifacts_dir.is_dir()

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert configure_mlflow(workspace, TrackingConfig()) == "http://mlflow.example:5000"
    configured = TrackingConfig(tracking_uri="http://configured:5000")
    assert configure_mlflow(workspace, configured) == "http://configured:5000"


def test_experiment_per_domain_keeps_artifacts_in_the_workspace(workspace, tmp_path):
    experiment_id = experiment_for_domain("usps", TrackingConfig(experiment_prefix="fourds-"))
    assert experiment_for_domain("usps") == experiment_id  # get, not create twice

    experiment = MlflowClient().get_experiment(experiment_id)
    assert experiment.name == "fourds-usps"
    assert Path(urlparse(experiment.artifact_location).path) == workspace.mlflow_artifacts_dir / "fourds-usps"

    with mlflow.start_run() as run:  # the active experiment is the domain's
        mlflow.log_text("hello", "notes/hello.txt")
    assert run.info.experiment_id == experiment_id
    assert list(workspace.mlflow_artifacts_dir.rglob("hello.txt"))
    assert not (tmp_path / "mlruns").exists()


def test_flatten_params_names_nested_fields():
    flat = flatten_params({"train": {"lr": 0.01, "sizes": [1, 64], "empty": {}}, "method": "4ds", "x": None})
    assert flat == {"train.lr": "0.01", "train.sizes": "[1, 64]", "train.empty": "{}", "method": "4ds", "x": "None"}


def test_log_config_logs_params_yaml_and_hash(workspace):
    config = load_config(overrides={"train": {"epochs": 3}, "export": {"latency_batch_sizes": [1, 8]}})
    experiment_for_domain("usps")
    with mlflow.start_run() as run:
        log_config(config)

    logged = MlflowClient().get_run(run.info.run_id).data
    assert logged.params["train.epochs"] == "3"
    assert logged.params["train.optimizers.adapters.name"] == "adamw"
    assert logged.params["export.latency_batch_sizes"] == "[1, 8]"
    assert logged.tags["fourds.config_hash"] == config.config_hash()
    yaml_path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=CONFIG_ARTIFACT)
    assert RunConfig.model_validate(yaml.safe_load(Path(yaml_path).read_text())) == config


def test_log_config_needs_an_active_run(workspace):
    with pytest.raises(RuntimeError, match="active MLflow run"):
        log_config(RunConfig())


class _LinearMethod(Method):
    name = "linear"

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.student = nn.Linear(4, 2)

    def parameter_groups(self):
        return {"student": list(self.student.parameters())}

    def training_step(self, images, labels):
        logits = self.student(images)
        loss = F.cross_entropy(logits, labels)
        return StepOutput(losses={"student/ce": loss}, objectives={"student": loss}, logits=logits)

    def evaluated_models(self):
        return {"student": self.student}


def test_callback_logs_a_real_training_run(workspace):
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(24, 4, generator=generator)
    labels = (images[:, 0] > 0).long()
    train_set, val_set = TensorDataset(images[:16], labels[:16]), TensorDataset(images[16:], labels[16:])
    config = TrainConfig(epochs=3, progress=False, device="cpu")
    callback = MlflowMetricsCallback(prefix="teacher/", log_every_steps=2)

    experiment_for_domain("mnist")
    with mlflow.start_run() as run:
        result = Trainer(_LinearMethod(), config, batch_size=4, callbacks=[callback]).fit(train_set, val_set)

    client = MlflowClient()
    run_id = run.info.run_id
    step_losses = client.get_metric_history(run_id, "teacher/train/student/ce")
    assert [m.step for m in step_losses] == [1, 2, 4, 6, 8, 10, 12]  # 4 steps per epoch, every 2nd + the first
    epoch_acc = client.get_metric_history(run_id, "teacher/epoch/val/student_acc")
    assert [m.step for m in epoch_acc] == [1, 2, 3]
    assert [m.step for m in client.get_metric_history(run_id, "teacher/val/student_acc")] == [4, 8, 12]
    final = client.get_run(run_id).data.metrics
    assert final["teacher/final/steps"] == result.steps == 12
    assert final["teacher/final/val/student_acc"] == pytest.approx(result.metrics["val/student_acc"])

    artifacts = {a.path for a in client.list_artifacts(run_id, "training/teacher")}
    assert {"training/teacher/history.json", "training/teacher/learning_curves.png"} <= artifacts


def test_the_distilled_students_curves_survive_a_guard_stage(workspace, tmp_path):
    """distill() runs the 4Ds stage, then the scratch guard through the same callback: each keeps its curves."""
    from fourds.training.recipes import GUARD_STAGE, distill

    generator = torch.Generator().manual_seed(0)
    images = torch.randn(24, 3, 8, 8, generator=generator)
    labels = torch.arange(24) % 2
    train_set, val_set = TensorDataset(images[:16], labels[:16]), TensorDataset(images[16:], labels[16:])
    config = load_config(overrides={
        "method": "4ds",
        "model": {"teacher_arch": "resnet18", "student_arch": "resnet18", "stem": "small_input"},
        "data": {"batch_size": 8, "image_size": 8, "resize_size": None},
        "train": {"max_steps": 2, "progress": False, "device": "cpu"},
    })
    teacher = build_classifier("resnet18", 2, stem="small_input")

    experiment_for_domain("usps")
    with mlflow.start_run() as run:
        result = distill(config, teacher, train_set, val_set, num_classes=2, callbacks=[MlflowMetricsCallback()])

    assert GUARD_STAGE in result.train_results  # premise: the guard stage ran through the callback
    client = MlflowClient()
    main = {a.path for a in client.list_artifacts(run.info.run_id, "training")}
    guard = {a.path for a in client.list_artifacts(run.info.run_id, f"training/{GUARD_STAGE}")}
    assert {"training/history.json", "training/learning_curves.png"} <= main
    assert {f"training/{GUARD_STAGE}/history.json", f"training/{GUARD_STAGE}/learning_curves.png"} <= guard
    history = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="training/history.json")).read_text())["history"]
    guard_history = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path=f"training/{GUARD_STAGE}/history.json")).read_text())["history"]
    assert any(name.startswith("train/") for name in history[-1])  # the distilled student's own names
    assert all(name.startswith(f"{GUARD_STAGE}/") or name in ("step", "epoch") for name in guard_history[-1])


def test_domain_splits_are_logged_as_datasets_with_the_dvc_md5_as_digest(workspace, tmp_path):
    table = tmp_path / "images.csv"
    header = "path,label,split,width,height,mode,bytes,sha256,decodable\n"
    rows = [f"{label}/{i}.png,{label},{split},8,8,L,90,{'a' * 64},True\n"
            for i, (label, split) in enumerate([("cat", "train"), ("dog", "train"), ("cat", "val"), ("dog", "test")])]
    rows.append(f"unlabelled/u.png,,unlabelled,8,8,L,90,{'b' * 64},True\n")
    table.write_text(header + "".join(rows))
    md5 = "0123456789abcdef0123456789abcdef.dir"  # a DVC directory md5: 36 characters

    experiment_for_domain("pets")
    with mlflow.start_run() as run:
        names = log_domain_datasets(table, domain="pets", domain_md5=md5, source=str(tmp_path))

    assert names == ["pets/train", "pets/val", "pets/test", "pets/unlabelled"]
    inputs = MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    logged = {i.dataset.name: (i.dataset.digest, {t.key: t.value for t in i.tags}) for i in inputs}
    assert set(logged) == set(names) and all(digest == md5 for digest, _ in logged.values())
    assert logged["pets/train"][1]["mlflow.data.context"] == "training"
    assert logged["pets/test"][1]["mlflow.data.context"] == "testing"
    assert json.loads([i.dataset for i in inputs if i.dataset.name == "pets/train"][0].profile)["num_rows"] == 2


def test_callback_refuses_to_train_without_a_run(workspace):
    with pytest.raises(RuntimeError, match="active MLflow run"):
        MlflowMetricsCallback().on_train_start({})
    with pytest.raises(ValueError, match="log_every_steps"):
        MlflowMetricsCallback(log_every_steps=0)


def test_configure_mlflow_leaves_the_users_environment_alone(tmp_path, monkeypatch):
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; a second workspace must not inherit it."""
    import os

    from fourds.workspace import Workspace

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    first, second = Workspace(tmp_path / "a"), Workspace(tmp_path / "b")
    assert configure_mlflow(first) == f"sqlite:///{first.mlflow_db}"
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert configure_mlflow(second) == f"sqlite:///{second.mlflow_db}"
