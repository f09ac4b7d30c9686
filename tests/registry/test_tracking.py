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
from fourds.registry.tracking import (
    CONFIG_ARTIFACT,
    MlflowMetricsCallback,
    configure_mlflow,
    experiment_for_domain,
    flatten_params,
    log_config,
)
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


def test_callback_refuses_to_train_without_a_run(workspace):
    with pytest.raises(RuntimeError, match="active MLflow run"):
        MlflowMetricsCallback().on_train_start({})
    with pytest.raises(ValueError, match="log_every_steps"):
        MlflowMetricsCallback(log_every_steps=0)


def test_configure_mlflow_leaves_the_users_environment_alone(tmp_path, monkeypatch):
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; a second workspace must not inherit it."""
    import os

    from fourds.registry.tracking import configure_mlflow
    from fourds.workspace import Workspace

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    first, second = Workspace(tmp_path / "a"), Workspace(tmp_path / "b")
    assert configure_mlflow(first) == f"sqlite:///{first.mlflow_db}"
    assert "MLFLOW_TRACKING_URI" not in os.environ
    assert configure_mlflow(second) == f"sqlite:///{second.mlflow_db}"
