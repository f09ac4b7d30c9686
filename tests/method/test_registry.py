"""The method registry: one registration makes a method known to the config, build_method and distill."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from fourds.config import ConfigError, RunConfig, load_config
from fourds.method import METHODS, Method, StepOutput, build_method, registry
from fourds.method.registry import method_names, method_spec, register_method


class _Mean(Method):
    """A tiny method: the student's cross-entropy, as a registered name builds it."""

    name = "mean"

    def __init__(self, student: nn.Module, scale: float):
        super().__init__()
        self.student = student
        self.scale = scale

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"student": list(self.student.parameters())}

    def training_step(self, images, labels, unlabelled=None) -> StepOutput:
        logits = self.student(images)
        loss = self.scale * nn.functional.cross_entropy(logits, labels)
        return StepOutput(losses={"student/ce": loss}, objectives={"student": loss}, logits=logits.detach())

    def evaluated_models(self) -> dict[str, nn.Module]:
        return {"student": self.student}

    @classmethod
    def from_config(cls, config: RunConfig, *, teacher: nn.Module | None, student: nn.Module) -> _Mean:
        return cls(student, scale=config.fourds.kd_weight)


@pytest.fixture
def clean_registry(monkeypatch):
    """Registrations made in a test leave the registry as it was."""
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))


def test_the_built_in_methods_in_their_order():
    assert method_names() == ("4ds", "kd", "two_stage", "student_scratch")
    two_stage = method_spec("two_stage")
    assert two_stage.is_recipe and two_stage.finetune_teacher and two_stage.student_method == "kd"
    assert [name for name in method_names() if method_spec(name).needs_teacher] == ["4ds", "kd", "two_stage"]


def test_a_registered_method_is_accepted_by_the_config_and_built(clean_registry):
    register_method("mean", _Mean)
    config = RunConfig(method="mean", model={"student_arch": "resnet18", "stem": "no_maxpool"},
                       data={"image_size": 32}, fourds={"kd_weight": 0.5})
    method = build_method(config.method, config, num_classes=3)
    assert isinstance(method, _Mean) and method.scale == 0.5
    assert method.student(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    assert METHODS["mean"] is _Mean and "mean" in list(METHODS)


def test_an_import_string_is_resolved_when_the_method_is_built(clean_registry):
    register_method("mean_by_name", f"{__name__}:_Mean")
    assert method_spec("mean_by_name").method_class() is _Mean


def test_an_unknown_name_is_refused_with_the_valid_names(clean_registry):
    with pytest.raises(ValueError, match="unknown method 'mosaic': expected one of 4ds, kd, two_stage, student_scratch"):
        RunConfig(method="mosaic")
    with pytest.raises(ConfigError, match="method: .*unknown method 'mosaic'.*4ds, kd, two_stage, student_scratch"):
        load_config(overrides={"method": "mosaic"})
    register_method("mean", _Mean)
    with pytest.raises(ValueError, match="unknown method 'mosaic': expected one of .*student_scratch, mean"):
        RunConfig(method="mosaic")


def test_inconsistent_registrations_are_refused(clean_registry):
    with pytest.raises(ValueError, match="already registered"):
        register_method("kd", _Mean)
    with pytest.raises(ValueError, match="either its class"):
        register_method("nothing")
    with pytest.raises(ValueError, match="'module:Class'"):
        register_method("bad", "fourds.method.baselines")
    with pytest.raises(ValueError, match="is a recipe"):
        register_method("three_stage", needs_teacher=True, student_method="two_stage")
    with pytest.raises(ValueError, match="needs a teacher"):
        register_method("kd_without_teacher", student_method="kd")
    assert "nothing" not in method_names()


def test_a_class_that_is_not_a_method_is_refused_when_built(clean_registry):
    register_method("plain", nn.Linear)
    with pytest.raises(TypeError, match="not a Method subclass"):
        build_method("plain", RunConfig(method="plain"), num_classes=2)


def test_the_config_reads_the_registry_without_torch():
    code = "import sys, fourds.config; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
