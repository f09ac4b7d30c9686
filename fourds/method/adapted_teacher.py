"""A frozen teacher with a Fourier adapter after each stage: only the adapters learn."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from fourds.method.fourier import FourierAdapter, phase_map
from fourds.method.frozen_teacher import BatchNormMode, check_bn_mode, set_frozen_teacher_mode
from fourds.models.taps import StageTaps, modules_before_output_of, probe_stage_shapes
from fourds.models.weights import ClassifierInfo, WeightsError, load_classifier_with_extra_state, save_classifier


class AdaptedTeacher(nn.Module):
    """``forward(x) -> (logits, [phase map per stage])``; each stage output is replaced by its adapter's.

    The adapters are wired in with forward hooks on the stage modules of a private copy
    of ``teacher``, so any torchvision CNN works, the teacher's code is untouched, and
    the caller's teacher keeps its plain forward and its BatchNorm statistics (it can
    still be evaluated as the source-only baseline).

    ``adapted_stages`` (default: all) names the stages that get an adapter; the others pass
    their output on unchanged and only report its phase map (fusion-activation still needs
    every stage's phases). ``bn_affine`` lets the backbone's BatchNorm scale and shift learn
    with the adapters (a few thousand numbers, as in TENT-style test-time adaptation); every
    other backbone weight stays frozen, except in the modules named by ``tuned_modules`` (e.g.
    ``["conv1"]``, the stem), whose weights also learn with the adapters; ``tune_early`` adds every
    layer that runs before the first stage's output (a ResNet's stem and ``layer1``). ``residual`` gives each
    adapter a path that can change content as well as style (:class:`FourierAdapter`).
    ``trainable_parameters()`` is what the adapters' optimiser owns.

    ``bn_mode`` decides what the frozen backbone's BatchNorm layers do while this module
    is in train mode: ``"adapt"`` keeps them in train mode so their running statistics
    follow the target domain (the reference's implicit AdaBN), ``"frozen"`` keeps them in
    eval mode. The rest of the backbone (e.g. dropout) always stays in eval mode; the
    adapters follow this module's mode.
    """

    def __init__(
        self,
        teacher: nn.Module,
        stage_names: Sequence[str],
        *,
        input_shape: Sequence[int] = (3, 224, 224),
        reduction: int = 4,
        temperature: float = 0.1,
        floor: float = 1e-5,
        bn_mode: BatchNormMode = "adapt",
        initial_mix: float = 0.5,
        adapted_stages: Sequence[str] | None = None,
        bn_affine: bool = False,
        tuned_modules: Sequence[str] = (),
        tune_early: bool = False,
        residual: bool = False,
    ):
        super().__init__()
        check_bn_mode(bn_mode)
        self.stage_names = list(stage_names)
        adapted_stages = self.stage_names if adapted_stages is None else list(adapted_stages)
        unknown = sorted(set(adapted_stages) - set(self.stage_names))
        if unknown or not adapted_stages:
            raise ValueError(
                f"adapted stages (config fourds.adapter_stages) must be a non-empty subset of the teacher's stages "
                f"{self.stage_names}, got {adapted_stages}"
            )
        # What rebuilding this module needs (besides the teacher): saved beside its weights.
        self.settings = {"stage_names": self.stage_names, "input_shape": list(input_shape), "reduction": reduction,
                         "temperature": temperature, "floor": floor, "bn_mode": bn_mode, "initial_mix": initial_mix,
                         "adapted_stages": adapted_stages, "bn_affine": bn_affine,
                         "tuned_modules": list(tuned_modules), "tune_early": tune_early, "residual": residual}
        self.teacher = copy.deepcopy(teacher).requires_grad_(False)
        if tune_early:  # the stem and the first stage: where a shift in colour and texture enters the teacher
            tuned_modules = [*tuned_modules,
                             *modules_before_output_of(self.teacher, self.stage_names[0], input_shape)]
        backbone = _batch_norm_affine(self.teacher) if bn_affine else []
        for name in tuned_modules:
            try:
                backbone += list(self.teacher.get_submodule(name).parameters())
            except AttributeError as exc:
                raise ValueError(f"tuned teacher module {name!r} (config fourds.adapter_tuned_modules) is not a module "
                                 f"of the teacher: {exc}") from exc
        # One entry per parameter, in the teacher's order (a BatchNorm of a tuned module is listed once).
        chosen = {id(parameter) for parameter in backbone}
        self.backbone_parameters = [p for p in self.teacher.parameters() if id(p) in chosen]
        for parameter in self.backbone_parameters:
            parameter.requires_grad_(True)
        self.bn_mode = bn_mode
        self.floor = floor
        self.stage_shapes = probe_stage_shapes(self.teacher, self.stage_names, input_shape)
        # stage index -> position in self.adapters, for the stages that have one.
        self._adapter_of = {self.stage_names.index(name): position
                            for position, name in enumerate(sorted(adapted_stages, key=self.stage_names.index))}
        self.adapters = nn.ModuleList(
            FourierAdapter(self.stage_shapes[index][0], reduction=reduction, temperature=temperature, floor=floor,
                           initial_mix=initial_mix, residual=residual)
            for index in self._adapter_of
        )
        self.adapters.to(next(self.teacher.parameters()).device)
        self._phases: dict[int, torch.Tensor] = {}
        self._taps = StageTaps(self.teacher, self.stage_names, rewrite=self._adapt_stage)
        self.train(self.training)

    @property
    def stage_channels(self) -> list[int]:
        return [shape[0] for shape in self.stage_shapes]

    def _adapt_stage(self, index: int, stage_output: torch.Tensor) -> torch.Tensor:
        if index not in self._adapter_of:
            self._phases[index] = phase_map(stage_output, self.floor)
            return stage_output
        adapted, phase = self.adapters[self._adapter_of[index]](stage_output)
        self._phases[index] = phase
        return adapted

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        self._phases.clear()
        logits = self.teacher(images)
        self._taps.outputs()  # raises if a stage did not run; the recorded inputs are not needed
        phases = [self._phases[index] for index in range(len(self.stage_names))]
        self._phases.clear()
        return logits, phases

    def train(self, mode: bool = True) -> AdaptedTeacher:
        super().train(mode)
        set_frozen_teacher_mode(self.teacher, mode, self.bn_mode)
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The adapters' parameters, and the backbone's that learn with them (``bn_affine``, ``tuned_modules``)."""
        return list(self.adapters.parameters()) + self.backbone_parameters

    @property
    def adapter_parameter_count(self) -> int:
        """Numbers that learn on the target domain (``trainable_parameters``)."""
        return sum(p.numel() for p in self.trainable_parameters())

    @property
    def adapter_share(self) -> float:
        """Learned parameters as a fraction of the teacher's (the paper: about 1-2%)."""
        return self.adapter_parameter_count / sum(p.numel() for p in self.teacher.parameters())

    @property
    def mix_weights(self) -> dict[str, tuple[float, float]]:
        """(a0, a1) per adapted stage: a0 weighs the adapted amplitude."""
        return {self.stage_names[index]: self.adapters[position].mix_weights for index, position in self._adapter_of.items()}


def _batch_norm_affine(model: nn.Module) -> list[nn.Parameter]:
    return [
        parameter
        for module in model.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine
        for parameter in (module.weight, module.bias)
    ]


def save_adapted_teacher(
    adapted: AdaptedTeacher, path: str | Path, *, arch: str, classes: list[str], stem: str,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write the adapted teacher (backbone with its target BatchNorm statistics, and the adapters) as one
    safetensors file; :func:`load_adapted_teacher` rebuilds it. The header holds the classifier
    description (as :func:`fourds.models.save_classifier` writes it) and the adapters' settings."""
    header = {**(metadata or {}), ADAPTERS_KEY: json.dumps(adapted.settings)}
    return save_classifier(adapted.teacher, path, arch=arch, classes=classes, stem=stem, metadata=header,
                           extra_state=adapted.adapters.state_dict())


def load_adapted_teacher(path: str | Path) -> tuple[LogitsOnly, ClassifierInfo]:
    """The adapted teacher of a file written by :func:`save_adapted_teacher`, as a plain classifier
    (``forward(x) -> logits``) in eval mode."""
    teacher, info, state = load_classifier_with_extra_state(path)
    if ADAPTERS_KEY not in info.metadata:
        raise WeightsError(f"{path} holds a classifier without Fourier adapters, not an adapted teacher")
    settings = json.loads(info.metadata[ADAPTERS_KEY])
    adapted = AdaptedTeacher(teacher, settings.pop("stage_names"), input_shape=tuple(settings.pop("input_shape")),
                             **settings)
    try:
        adapted.adapters.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: the adapters do not match their recorded settings: {exc}") from exc
    return LogitsOnly(adapted.eval()), info


ADAPTERS_KEY = "fourier_adapters"
"""The weights-file header entry that holds the adapters' settings (and marks an adapted teacher)."""


class LogitsOnly(nn.Module):
    """Wraps a module returning ``(logits, ...)`` so evaluation and export see a plain classifier."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)[0]
