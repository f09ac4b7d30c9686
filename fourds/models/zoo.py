"""torchvision classifiers by name, with a head for our classes and an optional small-image stem.

Teachers and students are plain torchvision models so that any classification
architecture torchvision ships can play either role, and so that weight files stay
ordinary ``state_dict`` s that torchvision itself can read.
"""

from __future__ import annotations

import difflib
import functools

import torch
import torchvision
from torch import nn
from torchvision.models import ResNet, SwinTransformer, VisionTransformer

STEMS = ("imagenet", "no_maxpool", "small_input")

# Transformers have no convolutional stages with NCHW maps to tap (Swin's are NHWC).
_WITHOUT_CONV_STAGES = (VisionTransformer, SwinTransformer)

# The input side used to discover stage resolutions (on the meta device, so it costs nothing).
_PROBE_SIDE = 224

# Containers that hold a CNN's stages in execution order, by the name torchvision gives them.
_TRUNK_NAMES = ("features", "trunk_output", "layers", "blocks")


def available_architectures() -> list[str]:
    """Names of every classification model torchvision ships."""
    return sorted(torchvision.models.list_models(module=torchvision.models))


def build_classifier(arch: str, num_classes: int, *, pretrained: bool = False, stem: str = "imagenet") -> nn.Module:
    """A torchvision classifier with ``num_classes`` outputs.

    ``pretrained`` loads torchvision's ImageNet weights (downloaded on first use); for
    another class count the backbone keeps those weights and the head starts fresh.
    ``stem`` adapts a ResNet to small inputs (see ``ModelConfig.stem``).
    """
    _check_architecture(arch)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1 to build {arch}, got {num_classes}")
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r} for {arch}: expected one of {', '.join(STEMS)}")
    if pretrained:
        weights = torchvision.models.get_model_weights(arch).DEFAULT
        model = torchvision.models.get_model(arch, weights=weights)
        imagenet_classes = len(weights.meta["categories"])
        if num_classes != imagenet_classes:
            replace_head(model, old_classes=imagenet_classes, num_classes=num_classes)
    else:
        model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    _apply_stem(model, arch, stem)
    return model


def replace_head(model: nn.Module, *, old_classes: int, num_classes: int) -> list[str]:
    """Swap every classification layer with ``old_classes`` outputs for a fresh one.

    Auxiliary heads (GoogLeNet, Inception) are swapped too. Returns the replaced
    module names; raises when none is found, since the model would keep the wrong output size.
    """
    replaced = []
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and module.out_features == old_classes:
            fresh: nn.Module = nn.Linear(module.in_features, num_classes, bias=module.bias is not None)
        elif isinstance(module, nn.Conv2d) and module.out_channels == old_classes and module.kernel_size == (1, 1):
            fresh = nn.Conv2d(module.in_channels, num_classes, kernel_size=1, bias=module.bias is not None)
        else:
            continue
        model.set_submodule(name, fresh)
        replaced.append(name)
    if not replaced:
        raise ValueError(
            f"no classification layer with {old_classes} outputs found in {type(model).__name__}; "
            "cannot set the number of classes"
        )
    return replaced


def _apply_stem(model: nn.Module, arch: str, stem: str) -> None:
    if stem == "imagenet":
        return
    if not isinstance(model, ResNet):
        raise ValueError(
            f"stem {stem!r} only applies to ResNet-family architectures; {arch} supports only stem 'imagenet'"
        )
    model.maxpool = nn.Identity()
    if stem == "small_input":
        conv = nn.Conv2d(3, model.conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        model.conv1 = conv


def _check_architecture(arch: str) -> None:
    names = available_architectures()
    if arch in names:
        return
    close = difflib.get_close_matches(arch, names, n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "see torchvision.models.list_models()"
    raise ValueError(f"unknown architecture {arch!r}: not a torchvision classification model; {hint}")


def default_stage_names(arch: str) -> list[str]:
    """Module names whose outputs are the four stage features of ``arch``.

    ResNets: ``layer1..layer4``. Other CNNs: within the feature trunk (``features``,
    RegNet's ``trunk_output``, else the top-level children), the last module at each
    of the last four spatial resolutions, i.e. the output of each stage just before
    the next one downsamples. Override with ``ModelConfig.teacher_stages/student_stages``.
    """
    _check_architecture(arch)
    if arch.startswith(("resnet", "resnext", "wide_resnet")):
        return ["layer1", "layer2", "layer3", "layer4"]
    if arch.startswith("regnet"):
        return [f"trunk_output.block{index}" for index in range(1, 5)]
    return list(_discovered_stage_names(arch))


@functools.cache
def _discovered_stage_names(arch: str) -> tuple[str, ...]:
    model = _shape_only_model(arch)
    if isinstance(model, _WITHOUT_CONV_STAGES):
        raise ValueError(
            f"{arch} has no convolutional stages to tap by default; "
            "set ModelConfig.teacher_stages/student_stages to module names with B x C x H x W outputs"
        )
    candidates = _trunk_modules(model)
    sizes = _output_sizes(model, candidates)
    last_at_resolution: dict[tuple[int, int], str] = {}
    for name, size in sizes:
        last_at_resolution[size] = name  # later modules at the same resolution win; dict keeps first-seen order
    stages = list(last_at_resolution.values())
    if len(stages) < 4:
        raise ValueError(
            f"found only {len(stages)} feature resolutions in {arch} ({stages}); "
            "set ModelConfig.teacher_stages/student_stages explicitly"
        )
    return tuple(stages[-4:])


def _shape_only_model(arch: str) -> nn.Module:
    """The model on the meta device (no memory, no compute) when the builder allows it."""
    try:
        with torch.device("meta"):
            return torchvision.models.get_model(arch, weights=None)
    except NotImplementedError:  # some builders (RegNet) compute widths from real tensors
        return torchvision.models.get_model(arch, weights=None)


def _trunk_modules(model: nn.Module) -> list[str]:
    for trunk in _TRUNK_NAMES:
        container = getattr(model, trunk, None)
        if isinstance(container, (nn.Sequential, nn.ModuleList)):
            return [f"{trunk}.{child}" for child, _ in container.named_children()]
    return [name for name, _ in model.named_children()]


def _output_sizes(model: nn.Module, names: list[str]) -> list[tuple[str, tuple[int, int]]]:
    """(name, (H, W)) of every listed module with a 4-D output, in execution order, up to global pooling."""
    recorded: list[tuple[str, tuple[int, int]]] = []
    pooled = False

    def record(name: str, module: nn.Module, output: object) -> None:
        nonlocal pooled
        if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            pooled = True
        if not pooled and isinstance(output, torch.Tensor) and output.dim() == 4:
            recorded.append((name, tuple(output.shape[-2:])))

    modules = dict(model.named_modules())
    handles = [
        modules[name].register_forward_hook(lambda module, _inputs, output, name=name: record(name, module, output))
        for name in names
    ]
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, _PROBE_SIDE, _PROBE_SIDE, device=device))
    except RuntimeError as exc:
        raise ValueError(
            f"could not trace the stages of {type(model).__name__} on a {_PROBE_SIDE}px input ({exc}); "
            "set ModelConfig.teacher_stages/student_stages explicitly"
        ) from exc
    finally:
        for handle in handles:
            handle.remove()
    return recorded
