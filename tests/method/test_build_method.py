import pytest
import torch

from fourds.config import RunConfig
from fourds.method import METHODS, FourDs, KnowledgeDistillation, Supervised, build_method
from fourds.models import build_classifier


@pytest.fixture(scope="module")
def config():
    return RunConfig.model_validate(
        {
            "model": {"teacher_arch": "resnet18", "student_arch": "resnet18", "stem": "no_maxpool"},
            "data": {"image_size": 32},
        }
    )


@pytest.fixture(scope="module")
def teacher(config):
    torch.manual_seed(0)
    return build_classifier("resnet18", 5, stem=config.model.stem)


def test_methods_are_a_plain_name_to_class_map():
    assert METHODS == {"4ds": FourDs, "kd": KnowledgeDistillation, "student_scratch": Supervised}


def test_4ds_uses_default_stages_and_the_configured_image_size(config, teacher):
    method = build_method("4ds", config, teacher=teacher)
    assert method.student_stages == ["layer1", "layer2", "layer3", "layer4"]
    assert [tuple(s) for s in method.adapted_teacher.stage_shapes][-1] == (512, 2, 2)
    assert method.adapted_teacher.bn_mode == config.fourds.teacher_bn
    assert method.fusion_stages == [0, 1, 2]  # layer4 is 2x2: its phases are 0 or pi
    assert method.evaluated_models()["student"](torch.randn(1, 3, 32, 32)).shape == (1, 5)  # class count of the teacher


def test_configured_stage_names_override_the_defaults(config, teacher):
    stages = ["conv1", "layer1", "layer2", "layer3"]
    custom = config.model_copy(update={"model": config.model.model_copy(update={"student_stages": stages})})
    method = build_method("4ds", custom, teacher=build_classifier("resnet18", 5, stem="no_maxpool"))
    assert method.student_stages == stages
    # The last pair (teacher layer4, student layer3) is 2x2 at 32 px: left out of fusion-activation.
    assert method.fusion_stages == [0, 1, 2]
    student_maps = [torch.zeros(1, channels, 4, 4) for channels in (64, 64, 128)]
    assert [phase.shape[1] for phase in method.fusion.student_phases(student_maps)] == [64, 128, 256]


def test_baselines_are_built_with_the_configured_temperature(config, teacher):
    kd = build_method("kd", config, teacher=teacher)
    assert kd.temperature == config.fourds.kd_temperature
    scratch = build_method("student_scratch", config, num_classes=4)
    assert isinstance(scratch, Supervised) and scratch.group == "student"


def test_user_errors_are_named(config):
    with pytest.raises(ValueError, match="two_stage is a recipe"):
        build_method("two_stage", config)
    with pytest.raises(ValueError, match="unknown method 'mosaickd'.*4ds, kd, student_scratch"):
        build_method("mosaickd", config)
    with pytest.raises(ValueError, match="'kd' distils from a teacher: pass teacher="):
        build_method("kd", config, student=build_classifier("resnet18", 3))
    with pytest.raises(ValueError, match="num_classes="):
        build_method("student_scratch", config)
