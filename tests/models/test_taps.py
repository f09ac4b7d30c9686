import pytest
import torch

from fourds.models import StageTaps, build_classifier, probe_stage_shapes


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return build_classifier("resnet18", 3).eval()


def _layer1_by_hand(model, images):
    return model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(images)))))


def _logits_from_layer1(model, layer1_output):
    pooled = model.avgpool(model.layer4(model.layer3(model.layer2(layer1_output))))
    return model.fc(torch.flatten(pooled, 1))


def test_taps_read_what_the_named_modules_produce(resnet):
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), StageTaps(resnet, ["layer1", "layer4"]) as taps:
        resnet(images)
        layer1, layer4 = taps.outputs()
    assert torch.equal(layer1, _layer1_by_hand(resnet, images))
    assert layer4.shape == (2, 512, 1, 1)


def test_rewrite_replaces_a_stage_output_downstream(resnet):
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = resnet(images)
        with StageTaps(resnet, ["layer1"], rewrite=lambda _index, output: output * 0.5) as taps:
            rewritten = resnet(images)
            (recorded,) = taps.outputs()
        expected = _logits_from_layer1(resnet, _layer1_by_hand(resnet, images) * 0.5)
    assert torch.allclose(rewritten, expected, atol=1e-5)
    assert not torch.allclose(rewritten, plain, atol=1e-3)
    assert torch.equal(recorded, _layer1_by_hand(resnet, images))  # what the module produced, before the rewrite


def test_leaving_the_context_removes_the_hooks(resnet):
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before = resnet(images)
        with StageTaps(resnet, ["layer2"], rewrite=lambda _index, output: output * 0):
            pass
        assert torch.equal(resnet(images), before)
    assert not resnet.layer2._forward_hooks


def test_unknown_module_name_lists_the_top_level_modules(resnet):
    with pytest.raises(ValueError, match=r"no module named 'layer9'.*conv1, bn1, relu, maxpool, layer1"):
        StageTaps(resnet, ["layer1", "layer9"])


def test_outputs_without_a_forward_pass_is_an_error(resnet):
    with StageTaps(resnet, ["layer1"]) as taps, pytest.raises(RuntimeError, match="layer1"):
        taps.outputs()


def test_probe_leaves_batchnorm_statistics_and_modes_alone():
    model = build_classifier("resnet18", 3).train()
    before = model.bn1.running_mean.clone()
    shapes = probe_stage_shapes(model, ["layer1", "layer2", "layer3", "layer4"], (3, 64, 64))
    assert [tuple(shape) for shape in shapes] == [(64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2)]
    assert torch.equal(model.bn1.running_mean, before)
    assert all(module.training for module in model.modules())
