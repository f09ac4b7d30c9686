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
                                       "temperature": 0.5, "floor": 1e-5, "bn_mode": "adapt",
                                       "initial_mix": 0.5, "adapted_stages": STAGES, "bn_affine": False,
                                       "tuned_modules": [], "tune_early": False, "residual": False}
    # A plain classifier loader refuses it (its adapters would be silently dropped) and says what to use.
    with pytest.raises(WeightsError, match="load_adapted_teacher"):
        load_classifier(path)


# The adapter study's options (issue 15): what each one trains, and what it leaves alone.

def test_adapter_counts_per_option_for_resnet34_pinned():
    """Hand count: an adapter of C channels at reduction r has 2*C*(C/r) conv weights, 2*(C/r + C) BatchNorm
    numbers and 2 mix logits; ResNet-34's stages are 64, 128, 256, 512 wide and its BatchNorm layers hold
    2 * 8,512 = 17,024 scale-and-shift numbers."""
    def adapter(channels, reduction):
        hidden = channels // reduction
        return 2 * channels * hidden + 2 * (hidden + channels) + 2

    with torch.device("meta"):
        teacher = build_classifier("resnet34", 10)
        full = AdaptedTeacher(teacher, STAGES, input_shape=(3, 32, 32), reduction=1)
        late = AdaptedTeacher(teacher, STAGES, input_shape=(3, 32, 32), adapted_stages=["layer3", "layer4"])
        affine = AdaptedTeacher(teacher, STAGES, input_shape=(3, 32, 32), bn_affine=True)
    assert full.adapter_parameter_count == sum(adapter(c, 1) for c in (64, 128, 256, 512)) == 700_168
    assert late.adapter_parameter_count == adapter(256, 4) + adapter(512, 4) == 165_764
    assert affine.adapter_parameter_count == sum(adapter(c, 4) for c in (64, 128, 256, 512)) + 17_024
    assert [adapter.transform[0].in_channels for adapter in late.adapters] == [256, 512]


def test_stages_without_an_adapter_pass_their_output_on_and_still_report_its_phase(source_teacher):
    from fourds.method.fourier import phase_map
    from fourds.models.taps import StageTaps

    adapted = AdaptedTeacher(source_teacher, STAGES, input_shape=(3, 32, 32), adapted_stages=["layer4"]).eval()
    with torch.no_grad():
        for adapter in adapted.adapters:
            adapter.theta.copy_(torch.tensor([-1e4, 0.0]))  # silence the one adapter: the whole net is the source's
        images = torch.randn(2, 3, 32, 32)
        logits, phases = adapted(images)
        with StageTaps(source_teacher, STAGES) as taps:
            expected = source_teacher(images)
            stage_outputs = taps.outputs()
    assert torch.allclose(logits, expected, atol=1e-4)
    assert list(adapted.mix_weights) == ["layer4"]
    for phase, output in zip(phases[:3], stage_outputs[:3]):
        assert torch.equal(phase, phase_map(output))
    with pytest.raises(ValueError, match="adapter_stages"):
        AdaptedTeacher(source_teacher, STAGES, input_shape=(3, 32, 32), adapted_stages=["layer5"])


def test_initial_mix_sets_a0_at_the_start_exactly():
    from fourds.method.fourier import FourierAdapter

    for mix in (0.1, 0.5, 0.9):
        adapted_weight, original_weight = FourierAdapter(8, initial_mix=mix, temperature=0.1).mix_weights
        assert adapted_weight == pytest.approx(mix, abs=1e-6) and original_weight == pytest.approx(1 - mix, abs=1e-6)
    assert torch.equal(FourierAdapter(8).theta, torch.zeros(2))  # the reference's start: theta = 0
    with pytest.raises(ValueError, match="initial_mix"):
        FourierAdapter(8, initial_mix=1.0)


def test_bn_affine_trains_batchnorm_scale_and_shift_and_nothing_else_of_the_backbone(source_teacher):
    adapted = AdaptedTeacher(source_teacher, STAGES, input_shape=(3, 32, 32), bn_affine=True).train()
    owned = {id(p) for p in adapted.trainable_parameters()}
    for name, parameter in adapted.teacher.named_parameters():
        is_bn = isinstance(adapted.teacher.get_submodule(name.rsplit(".", 1)[0]), nn.BatchNorm2d)
        assert (id(parameter) in owned) == is_bn == parameter.requires_grad, name
    before = {name: p.detach().clone() for name, p in adapted.teacher.named_parameters()}
    optimiser = torch.optim.SGD(adapted.trainable_parameters(), lr=0.1)
    logits, _ = adapted(torch.randn(4, 3, 32, 32))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
    optimiser.step()
    for name, parameter in adapted.teacher.named_parameters():
        changed = not torch.equal(parameter, before[name])
        assert changed == parameter.requires_grad, name  # BatchNorm moved; every conv and the classifier bit-identical
    assert all(p.requires_grad for p in source_teacher.parameters())  # the caller's teacher is untouched


def test_a_residual_adapter_starts_exactly_as_without_it_and_then_changes_content():
    from fourds.method.fourier import FourierAdapter

    torch.manual_seed(0)
    plain = FourierAdapter(8, reduction=2).eval()
    residual = FourierAdapter(8, reduction=2, residual=True).eval()
    residual.load_state_dict(plain.state_dict(), strict=False)  # same bottleneck and mix; the scale stays 0
    features = torch.relu(torch.randn(2, 8, 6, 6))
    assert torch.equal(residual(features)[0], plain(features)[0])
    assert sum(p.numel() for p in residual.parameters()) == sum(p.numel() for p in plain.parameters()) + 8
    with torch.no_grad():
        residual.residual_scale.fill_(0.5)
        expected = plain(features)[0] + 0.5 * plain.transform(features)
    assert torch.allclose(residual(features)[0], expected, atol=1e-6)


def test_tuned_modules_learn_with_the_adapters_and_the_rest_stays_bit_identical(source_teacher):
    adapted = AdaptedTeacher(source_teacher, STAGES, input_shape=(3, 32, 32), tuned_modules=["conv1", "layer1"],
                             bn_affine=True).train()
    tuned = {name for name, _ in adapted.teacher.named_parameters()
             if name.startswith(("conv1.", "layer1.")) or isinstance(
                 adapted.teacher.get_submodule(name.rsplit(".", 1)[0]), nn.BatchNorm2d)}
    owned = {id(p) for p in adapted.trainable_parameters()}
    assert len(owned) == len(adapted.trainable_parameters())  # a BatchNorm inside layer1 is listed once
    assert {name for name, p in adapted.teacher.named_parameters() if id(p) in owned} == tuned
    before = {name: p.detach().clone() for name, p in adapted.teacher.named_parameters()}
    optimiser = torch.optim.SGD(adapted.trainable_parameters(), lr=0.1)
    logits, _ = adapted(torch.randn(4, 3, 32, 32))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
    optimiser.step()
    changed = {name for name, p in adapted.teacher.named_parameters() if not torch.equal(p, before[name])}
    assert changed == tuned
    with pytest.raises(ValueError, match="adapter_tuned_modules"):
        AdaptedTeacher(source_teacher, STAGES, input_shape=(3, 32, 32), tuned_modules=["stem"])


def test_tune_early_trains_the_stem_and_the_first_stage(source_teacher):
    early = AdaptedTeacher(source_teacher, STAGES, input_shape=(3, 32, 32), tune_early=True)
    named = AdaptedTeacher(source_teacher, STAGES, input_shape=(3, 32, 32), tuned_modules=["conv1", "bn1", "layer1"])
    owned = {name for name, p in early.teacher.named_parameters() if p.requires_grad}
    assert owned == {name for name, p in named.teacher.named_parameters() if p.requires_grad}
    assert owned and all(name.startswith(("conv1.", "bn1.", "layer1.")) for name in owned)
    # ResNet-18: conv1 9,408 + bn1 128 + layer1 147,968 learn besides the adapters.
    assert early.adapter_parameter_count == named.adapter_parameter_count
    assert early.adapter_parameter_count - _adapted(source_teacher).adapter_parameter_count == 9_408 + 128 + 147_968
