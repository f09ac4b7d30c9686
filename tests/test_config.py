"""The typed configuration: defaults, YAML loading, errors that name the field, the hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from fourds.config import ConfigError, RunConfig, config_reference_markdown, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_reference_values():
    config = RunConfig()
    assert config.fourds.kd_temperature == 4.0
    assert config.fourds.fusion_weight == 0.1
    assert config.fourds.adapter_reduction == 4
    assert config.fourds.teacher_bn == "adapt"
    student, adapters = config.train.optimizers["student"], config.train.optimizers["adapters"]
    assert (student.name, student.lr, student.momentum, student.weight_decay) == ("sgd", 0.01, 0.9, 5e-4)
    assert (adapters.name, adapters.lr, adapters.eps) == ("adamw", 1e-3, 1e-4)


def test_partial_optimizer_override_keeps_the_other_groups(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  optimizers:\n    student: {name: sgd, lr: 0.05}\n")
    config = load_config(path)
    assert config.train.optimizers["student"].lr == 0.05
    assert config.train.optimizers["adapters"].name == "adamw"


def test_unknown_key_is_an_error_naming_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("fourds:\n  kd_temprature: 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*fourds\.kd_temprature"):
        load_config(path)


def test_bad_values_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="data.batch_size"):
        load_config(overrides={"data": {"batch_size": 0}})
    with pytest.raises(ConfigError, match="val_fraction \\+ test_fraction"):
        load_config(overrides={"data": {"val_fraction": 0.5, "test_fraction": 0.5}})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_shipped_configs_load_and_zenml_config_is_accepted():
    demo = load_config(ROOT / "configs" / "demo.yaml")
    zenml = load_config(ROOT / "zenml_config.yaml")
    assert demo.data.image_size == 32
    assert zenml.method == "4ds"


def test_config_hash_ignores_layout_but_not_values():
    a = load_config(overrides={"train": {"epochs": 3}, "method": "kd"})
    b = load_config(overrides={"method": "kd", "train": {"epochs": 3}})
    c = load_config(overrides={"method": "kd", "train": {"epochs": 4}})
    assert a.config_hash() == b.config_hash() != c.config_hash()


def test_configuration_reference_doc_is_current():
    doc = (ROOT / "docs" / "CONFIGURATION.md").read_text()
    assert config_reference_markdown() in doc, "regenerate docs/CONFIGURATION.md from config_reference_markdown()"


def test_options_added_later_leave_keys_alone_only_at_their_old_behaviour():
    from fourds.config import FourDsConfig

    reference = FourDsConfig()
    assert "adapter_bn_affine" not in reference.identity() and "adapter_im_weight" not in reference.identity()
    assert set(reference.identity()) == set(reference.model_dump()) - {
        "adapter_initial_mix", "adapter_stages", "adapter_bn_affine", "adapter_im_weight", "adapter_tuned_modules",
        "adapter_residual", "adapter_kd_weight"}
    changed = FourDsConfig(adapter_bn_affine=True, adapter_stages=[2, 3])
    assert changed.identity()["adapter_bn_affine"] is True and changed.identity()["adapter_stages"] == [2, 3]
    assert "adapter_im_weight" not in changed.identity()
