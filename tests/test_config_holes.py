"""Configuration holes (issue 14, item 5): every mistake below was accepted at load time before.

Each is refused by ``load_config`` with one message naming the file and the key path.
"""

from __future__ import annotations

import pytest

from fourds.config import ConfigError, RunConfig, load_config
from fourds_app.cli import main


def refused(tmp_path, text: str) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train:\n  optimizers:\n    studnet: {lr: 0.1}\n",
         "train.optimizers.studnet: unknown optimiser group 'studnet' (did you mean 'student'?); "
         "the groups are student, adapters or teacher"),
        ("teacher_train:\n  optimizers:\n    head: {lr: 0.1}\n",
         "teacher_train.optimizers.head: unknown optimiser group"),
        ("train:\n  optimizers:\n    student: {lr: .inf}\n",
         "train.optimizers.student.lr: Input should be a finite number"),
        ("train:\n  optimizers:\n    adapters: {lr: .nan}\n",
         "train.optimizers.adapters.lr: Input should be a finite number"),
        ("fourds:\n  kd_temperature: .inf\n", "fourds.kd_temperature: Input should be a finite number"),
        ("data:\n  mean: [0.5, .nan, 0.5]\n", "data.mean.1: Input should be a finite number"),
        ("data:\n  label_budget: .nan\n", "data.label_budget: Input should be a finite number"),
        ("promotion:\n  min_accuracy_gain: .nan\n", "promotion.min_accuracy_gain: Input should be a finite number"),
        ("promotion:\n  max_latency_ms: .inf\n", "promotion.max_latency_ms: Input should be a finite number"),
        ("data:\n  std: [0, 0, 0]\n", "data.std: every channel's std must be > 0"),
        ("data:\n  std: [0.2, -0.2, 0.2]\n", "data.std: every channel's std must be > 0"),
        ("model:\n  teacher_arch: resnet999\n",
         "model.teacher_arch: unknown architecture 'resnet999': not a torchvision classification model; did you mean"),
        ("model:\n  student_arch: not-a-net\n", "model.student_arch: unknown architecture 'not-a-net'"),
        ("train:\n  device: tpu\n", "train.device: unknown device 'tpu': use auto, cpu, cuda, cuda:N"),
        ("teacher_train:\n  device: 'cuda:x'\n", "teacher_train.device: unknown device 'cuda:x'"),
        ("train:\n  epochs: 3\n  seed: 1\n  epochs: 5\n",
         "duplicate key train.epochs at line 4 (first given at line 2); YAML would keep only the last value"),
        ("train:\n  optimizers:\n    student: {lr: 0.1, lr: 0.2}\n",
         "duplicate key train.optimizers.student.lr at line 3"),
        ("method: kd\nmethod: 4ds\n", "duplicate key method at line 2 (first given at line 1)"),
        ("parameters:\n  config:\n    train: {epochs: 1}\n    train: {epochs: 2}\n",
         "duplicate key parameters.config.train at line 4"),
        ("", "the config file is empty"),
        ("# only a comment\n\n", "the config file is empty"),
        ("parameters:\n  config:\n", "parameters.config: expected the RunConfig mapping, found nothing"),
    ],
)
def test_each_hole_is_refused_naming_the_file_and_the_key(tmp_path, text, expected):
    assert expected in refused(tmp_path, text)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_every_supported_device_name_loads(tmp_path, device):
    path = tmp_path / "run.yaml"
    path.write_text(f"train:\n  device: '{device}'\n")
    assert load_config(path).train.device == device


def test_good_files_still_load(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  teacher_arch: mobilenet_v3_large\n  student_arch: resnet18\n"
                    "teacher_train: &short\n  epochs: 2\n"
                    "train:\n  <<: *short\n  epochs: 3\n  optimizers:\n    student: {lr: 0.05}\n")
    config = load_config(path)
    assert config.model.teacher_arch == "mobilenet_v3_large"
    assert (config.teacher_train.epochs, config.train.epochs) == (2, 3)  # a merge key is not a duplicate
    assert set(config.train.optimizers) == {"student", "adapters", "teacher"}
    assert config.train.optimizers["student"].lr == 0.05
    assert load_config(None) == RunConfig()  # no file at all still means the defaults


def test_an_empty_config_file_is_a_usage_error_at_the_cli(capsys, tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(SystemExit) as finished:
        main(["status", "--config", str(path), "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err

    assert finished.value.code == 2
    assert err.strip() == (f"error: {path}: the config file is empty (no settings at all); give at least one "
                           "setting, or leave --config out to use the defaults")
