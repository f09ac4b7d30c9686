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

    later = {"adapter_initial_mix": 0.5, "adapter_stages": None, "adapter_bn_affine": False, "adapter_im_weight": 0.0,
             "adapter_tuned_modules": [], "adapter_residual": False, "adapter_kd_weight": None,
             "adapter_tune_early": False}
    before_the_study = FourDsConfig(**later)
    assert set(before_the_study.identity()) == set(before_the_study.model_dump()) - set(later)
    # Today's defaults differ from those in four of them: keys made with them differ from the old ones.
    assert set(FourDsConfig().identity()) - set(before_the_study.identity()) == {
        "adapter_initial_mix", "adapter_bn_affine", "adapter_im_weight", "adapter_tune_early"}
    changed = FourDsConfig(**{**later, "adapter_stages": [2, 3]})
    assert changed.identity()["adapter_stages"] == [2, 3] and "adapter_im_weight" not in changed.identity()


DEFAULTS_CHANGED_FROM_THE_REFERENCE = {
    # docs/METHOD_NOTES.md: the wrap-around aware phase distance, and maps too small to carry phase left out,
    "fusion_distance", "fusion_min_side",
    # and the adapter study (benchmarks/results/adapters-study.md).
    "adapter_initial_mix", "adapter_tune_early", "adapter_bn_affine", "adapter_im_weight",
}


def test_the_reference_preset_holds_the_papers_settings_and_differs_from_the_defaults_where_documented():
    reference = load_config(ROOT / "configs" / "4ds-reference.yaml")
    defaults = load_config()
    # METHOD.md's reference values, written out (a key left out of the preset would fall back to a default).
    assert reference.fourds.model_dump() == {
        "adapter_reduction": 4, "adapter_initial_mix": 0.5, "adapter_stages": None, "adapter_bn_affine": False,
        "adapter_tuned_modules": [], "adapter_tune_early": False, "adapter_residual": False, "adapter_kd_weight": None,
        "adapter_im_weight": 0.0,
        "amplitude_temperature": 0.1, "spectrum_floor": 1e-5, "gate_reduction": 16, "fusion_weight": 0.1,
        "fusion_distance": "angle", "fusion_min_side": 1, "kd_temperature": 4.0, "kd_weight": 1.0, "teacher_bn": "adapt",
    }
    adapters = reference.train.optimizers["adapters"]
    assert (adapters.name, adapters.lr, adapters.eps, adapters.schedule) == ("adamw", 0.001, 0.0001, "cosine")
    student = reference.train.optimizers["student"]
    assert (student.name, student.lr, student.momentum, student.weight_decay) == ("sgd", 0.01, 0.9, 0.0005)
    changed = {name for name, value in defaults.fourds.model_dump().items() if reference.fourds.model_dump()[name] != value}
    assert changed == DEFAULTS_CHANGED_FROM_THE_REFERENCE
