"""Stage features by module name, with forward hooks, without touching a model's forward().

Two uses: *reading* what named modules produce (the student's stage maps), and
*rewriting* it (the teacher's Fourier adapters, whose output continues into the next
stage). Both work on any torchvision CNN, so neither teacher nor student has to be a
ResNet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

StageRewrite = Callable[[int, torch.Tensor], torch.Tensor]
"""Called as ``rewrite(stage_index, stage_output)``; its result replaces the stage output."""


def find_modules(model: nn.Module, names: Sequence[str]) -> list[nn.Module]:
    """The submodules called ``names`` (dotted paths, as in ``named_modules()``), in that order."""
    if not names:
        raise ValueError(f"no stage module names given for {type(model).__name__}")
    modules = dict(model.named_modules())
    missing = [name for name in names if name not in modules or name == ""]
    if missing:
        top_level = ", ".join(name for name, _ in model.named_children())
        raise ValueError(
            f"{type(model).__name__} has no module named {', '.join(map(repr, missing))}; "
            f"its top-level modules are: {top_level} (nested names are dotted, e.g. 'features.3')"
        )
    return [modules[name] for name in names]


class StageTaps:
    """Forward hooks on named modules that record (and optionally rewrite) their outputs.

    Use as a context manager to tap only for the duration of a block, so that the model
    carries no hooks when it is evaluated or exported::

        with StageTaps(student, ["layer1", "layer2"]) as taps:
            logits = student(images)
            stage_maps = taps.outputs()

    ``rewrite`` makes the hooks replace each stage's output with
    ``rewrite(stage_index, output)``; ``outputs()`` still returns what the modules produced.
    A module whose output is later modified in place by the model (e.g. DenseNet's final
    in-place ReLU) is recorded with that modification.
    """

    def __init__(self, model: nn.Module, names: Sequence[str], rewrite: StageRewrite | None = None):
        self.names = list(names)
        self._modules = find_modules(model, self.names)
        self._rewrite = rewrite
        self._recorded: dict[int, torch.Tensor] = {}
        self._handles: list[RemovableHandle] = [
            module.register_forward_hook(self._hook_for(index)) for index, module in enumerate(self._modules)
        ]

    def _hook_for(self, index: int):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f"stage module {self.names[index]!r} returned {type(output).__name__}, not a tensor; "
                    "tap a module whose output is a B x C x H x W feature map"
                )
            self._recorded[index] = output
            return None if self._rewrite is None else self._rewrite(index, output)

        return hook

    def outputs(self) -> list[torch.Tensor]:
        """The stage outputs of the last forward pass, in stage order; clears them."""
        missing = [self.names[index] for index in range(len(self.names)) if index not in self._recorded]
        if missing:
            raise RuntimeError(
                f"stage modules {missing} produced no output in the last forward pass "
                "(not called by forward(), or no forward pass ran since the last outputs())"
            )
        recorded = [self._recorded[index] for index in range(len(self.names))]
        self._recorded.clear()
        return recorded

    def remove(self) -> None:
        """Detach the hooks; the model behaves as before the taps."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._recorded.clear()

    def __enter__(self) -> StageTaps:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.remove()


def probe_stage_shapes(
    model: nn.Module, names: Sequence[str], input_shape: Sequence[int]
) -> list[torch.Size]:
    """Shapes (C, H, W) of the named stage outputs for one input of ``input_shape`` (C, H, W).

    Runs in eval mode under no_grad, so BatchNorm running statistics are untouched,
    and restores the model's training flags afterwards.
    """
    modes = {module: module.training for module in model.modules()}
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    try:
        model.eval()
        with StageTaps(model, names) as taps, torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
            stage_maps = taps.outputs()
    finally:
        for module, training in modes.items():
            module.training = training
    for name, stage_map in zip(names, stage_maps):
        if stage_map.dim() != 4:
            raise ValueError(
                f"stage module {name!r} of {type(model).__name__} outputs shape {tuple(stage_map.shape)}; "
                "a stage must output a B x C x H x W feature map"
            )
    return [stage_map.shape[1:] for stage_map in stage_maps]


def modules_before_output_of(model: nn.Module, stage: str, input_shape: Sequence[int]) -> list[str]:
    """Names of the parameterised leaf modules that run until ``stage`` has produced its output
    (for a ResNet and ``"layer1"``: the stem's conv1 and bn1, then every layer of layer1), in call order.

    Found by running one zero input of ``input_shape`` (C, H, W) with hooks, in eval mode under
    no_grad, so any architecture's own forward decides what comes first.
    """
    [stage_module] = find_modules(model, [stage])
    called: list[str] = []
    finished = False

    def record(name: str):
        def hook(module, inputs, output):
            if not finished and name not in called:
                called.append(name)
        return hook

    def stage_done(module, inputs, output):
        nonlocal finished
        finished = True

    leaves = [(name, module) for name, module in model.named_modules()
              if not list(module.children()) and any(True for _ in module.parameters(recurse=False))]
    handles = [module.register_forward_hook(record(name)) for name, module in leaves]
    handles.append(stage_module.register_forward_hook(stage_done))
    modes = {module: module.training for module in model.modules()}
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    return called
