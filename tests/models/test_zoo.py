from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from fourds.models import build_classifier, default_stage_names, probe_stage_shapes, replace_head


def test_builds_any_torchvision_classifier_with_our_class_count():
    model = build_classifier("mobilenet_v3_small", 7).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_small_input_stem_keeps_full_resolution_into_layer1():
    with torch.device("meta"):  # shapes only
        imagenet = build_classifier("resnet18", 3)
        no_maxpool = build_classifier("resnet18", 3, stem="no_maxpool")
        small = build_classifier("resnet18", 3, stem="small_input")
    assert isinstance(no_maxpool.maxpool, nn.Identity) and no_maxpool.conv1.kernel_size == (7, 7)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    layer1_sides = [probe_stage_shapes(m, ["layer1"], (3, 32, 32))[0][-1] for m in (imagenet, no_maxpool, small)]
    assert layer1_sides == [8, 16, 32]


def test_stems_other_than_imagenet_are_refused_for_non_resnets():
    with pytest.raises(ValueError, match="only applies to ResNet"):
        build_classifier("mobilenet_v2", 3, stem="small_input")
    with pytest.raises(ValueError, match="unknown stem"):
        build_classifier("resnet18", 3, stem="tiny")


def test_unknown_architecture_suggests_close_names():
    with pytest.raises(ValueError, match="resnet34"):
        build_classifier("resnet35", 3)


def test_resnet_stages_are_the_four_layers():
    assert default_stage_names("resnet50") == ["layer1", "layer2", "layer3", "layer4"]
    assert default_stage_names("regnet_y_400mf")[-1] == "trunk_output.block4"


@pytest.mark.parametrize("arch", ["mobilenet_v3_small", "efficientnet_b0", "vgg11"])
def test_default_stages_sit_at_four_successive_resolutions(arch):
    names = default_stage_names(arch)
    with torch.device("meta"):
        model = build_classifier(arch, 5)
    sides = [shape[-1] for shape in probe_stage_shapes(model, names, (3, 224, 224))]
    assert len(names) == 4
    assert sides == [56, 28, 14, 7]


def test_default_stage_names_returns_a_fresh_list():
    default_stage_names("mobilenet_v3_small").append("oops")
    assert len(default_stage_names("mobilenet_v3_small")) == 4


def test_transformers_have_no_default_stages():
    with pytest.raises(ValueError, match="teacher_stages"):
        default_stage_names("vit_b_16")


def test_replace_head_swaps_auxiliary_heads_too():
    with torch.device("meta"):
        inception = build_classifier("inception_v3", 1000)
    assert replace_head(inception, old_classes=1000, num_classes=4) == ["AuxLogits.fc", "fc"]
    assert inception.fc.out_features == 4 and inception.AuxLogits.fc.out_features == 4


def test_pretrained_keeps_the_backbone_and_reinitialises_the_head(tmp_path, monkeypatch):
    # A stand-in for torchvision's ImageNet checkpoint, placed where the hub cache looks,
    # so the real download code path runs without a network.
    # SqueezeNet: small, and its head is a 1x1 convolution rather than a Linear layer.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    imagenet_like = build_classifier("squeezenet1_1", 1000).state_dict()
    url = torchvision.models.get_model_weights("squeezenet1_1").DEFAULT.url
    torch.save(imagenet_like, checkpoints / Path(url).name)

    model = build_classifier("squeezenet1_1", 7, pretrained=True)
    assert torch.equal(model.features[3].squeeze.weight, imagenet_like["features.3.squeeze.weight"])
    assert model.classifier[1].out_channels == 7
    assert not torch.equal(model.classifier[1].weight, imagenet_like["classifier.1.weight"][:7])

    same_classes = build_classifier("squeezenet1_1", 1000, pretrained=True)
    assert torch.equal(same_classes.classifier[1].weight, imagenet_like["classifier.1.weight"])
