import pytest
import torch
from torch import nn

from fourds.method import AdaptedTeacher, LogitsOnly
from fourds.models import build_classifier

STAGES = ["layer1", "layer2", "layer3", "layer4"]


@pytest.fixture(scope="module")
def source_teacher():
    torch.manual_seed(0)
    return build_classifier("resnet18", 3).eval()


def _adapted(teacher, bn_mode="adapt"):
    return AdaptedTeacher(teacher, STAGES, input_shape=(3, 32, 32), bn_mode=bn_mode)


def test_backbone_is_frozen_and_adapters_learn(source_teacher):
    adapted = _adapted(source_teacher)
    assert adapted.teacher is not source_teacher  # the caller's teacher stays the plain source model
    assert all(p.requires_grad for p in source_teacher.parameters())
    assert not any(module._forward_hooks for module in source_teacher.modules())
    assert not any(p.requires_grad for p in adapted.teacher.parameters())
    assert all(p.requires_grad for p in adapted.adapters.parameters())
    assert adapted.stage_channels == [64, 128, 256, 512]
    assert adapted.adapter_parameter_count == sum(p.numel() for p in adapted.adapters.parameters())


def test_forward_gives_logits_and_one_phase_map_per_stage(source_teacher):
    adapted = _adapted(source_teacher)
    logits, phases = adapted(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 3)
    assert [tuple(p.shape) for p in phases] == [(2, 64, 8, 8), (2, 128, 4, 4), (2, 256, 2, 2), (2, 512, 1, 1)]
    assert LogitsOnly(adapted)(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_silenced_adapters_leave_the_teacher_unchanged(source_teacher):
    adapted = _adapted(source_teacher).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = source_teacher(images)
        assert not torch.allclose(adapted(images)[0], expected, atol=1e-3)  # an even amplitude mix at init
        for adapter in adapted.adapters:
            adapter.theta.copy_(torch.tensor([-1e4, 0.0]))
        assert torch.allclose(adapted(images)[0], expected, atol=1e-4)


def test_adapter_share_of_resnet34_is_about_one_percent():
    with torch.device("meta"):  # parameter counts only
        adapted = AdaptedTeacher(build_classifier("resnet34", 1000), STAGES, input_shape=(3, 224, 224))
    assert adapted.adapter_parameter_count == 176_488
    assert 0.008 < adapted.adapter_share < 0.009


def _batch_norm_modes(adapted):
    return {m.training for m in adapted.teacher.modules() if isinstance(m, nn.BatchNorm2d)}


def test_adapt_mode_lets_teacher_batchnorm_follow_the_target(source_teacher):
    adapted = _adapted(source_teacher, "adapt").train()
    assert _batch_norm_modes(adapted) == {True}
    assert not adapted.teacher.training and not adapted.teacher.fc.training
    assert all(adapter.training for adapter in adapted.adapters)
    before = adapted.teacher.layer2[0].bn1.running_mean.clone()
    adapted(torch.randn(4, 3, 32, 32) + 2.0)
    assert not torch.equal(adapted.teacher.layer2[0].bn1.running_mean, before)

    adapted.eval()
    assert _batch_norm_modes(adapted) == {False} and not any(a.training for a in adapted.adapters)


def test_frozen_mode_keeps_teacher_batchnorm_statistics(source_teacher):
    adapted = _adapted(source_teacher, "frozen").train()
    assert _batch_norm_modes(adapted) == {False}
    assert all(adapter.training for adapter in adapted.adapters)
    before = {name: b.clone() for name, b in adapted.teacher.named_buffers()}
    adapted(torch.randn(4, 3, 32, 32) + 2.0)
    assert all(torch.equal(b, before[name]) for name, b in adapted.teacher.named_buffers())


def test_unknown_bn_mode_is_refused(source_teacher):
    with pytest.raises(ValueError, match="bn_mode"):
        _adapted(source_teacher, "adabn")


def test_an_adapted_teacher_file_reloads_with_its_adapters_and_target_statistics(source_teacher, tmp_path):
    from fourds.method.adapted_teacher import load_adapted_teacher, save_adapted_teacher
    from fourds.models import load_classifier
    from fourds.models.weights import WeightsError

    adapted = AdaptedTeacher(source_teacher, STAGES, input_shape=(3, 32, 32), reduction=8, temperature=0.5)
    with torch.no_grad():
        for index, adapter in enumerate(adapted.adapters):
            adapter.theta.copy_(torch.tensor([0.3 * index, -0.2]))
        adapted.train()(torch.randn(8, 3, 32, 32) + 2.0)  # "adapt" BatchNorm: the statistics move to the target
    adapted.eval()
    path = save_adapted_teacher(adapted, tmp_path / "adapted_teacher.safetensors", arch="resnet18",
                                classes=["a", "b", "c"], stem="imagenet", metadata={"domain": "x"})

    reloaded, info = load_adapted_teacher(path)
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = adapted(images)[0]
        assert torch.equal(reloaded(images), expected)
        assert not torch.allclose(source_teacher(images), expected, atol=1e-3)
    assert (info.arch, info.classes, info.metadata["domain"]) == ("resnet18", ["a", "b", "c"], "x")
    assert reloaded.model.settings == {"stage_names": STAGES, "input_shape": [3, 32, 32], "reduction": 8,
                                       "temperature": 0.5, "floor": 1e-5, "bn_mode": "adapt"}
    # A plain classifier loader refuses it (its adapters would be silently dropped) and says what to use.
    with pytest.raises(WeightsError, match="load_adapted_teacher"):
        load_classifier(path)
