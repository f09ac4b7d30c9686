"""``build_method``: a registered method's name and a RunConfig in, a ready :class:`Method` out."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import nn

from fourds.config import RunConfig
from fourds.method.base import Method
from fourds.method.registry import method_names, method_spec
from fourds.models.zoo import build_classifier


class _MethodClasses(Mapping[str, type[Method]]):
    """Name -> class of every registered method that has one (recipes such as two_stage have none),
    read from the registry at each access, so a method registered later is in it too."""

    def __getitem__(self, name: str) -> type[Method]:
        if name not in method_names() or method_spec(name).is_recipe:
            raise KeyError(name)
        return method_spec(name).method_class()

    def __iter__(self) -> Iterator[str]:
        return (name for name in method_names() if not method_spec(name).is_recipe)

    def __len__(self) -> int:
        return sum(1 for _ in self)


METHODS: Mapping[str, type[Method]] = _MethodClasses()


def build_method(
    name: str,
    config: RunConfig,
    *,
    teacher: nn.Module | None = None,
    student: nn.Module | None = None,
    num_classes: int | None = None,
) -> Method:
    """The method registered as ``name``, configured from ``config`` (its class's ``from_config``).

    ``teacher`` is required by a method registered with ``needs_teacher``. Without
    ``student``, a fresh ``config.model.student_arch`` is built with ``num_classes``
    outputs (by default as many as the teacher has).
    """
    recipes = [other for other in method_names() if method_spec(other).is_recipe]
    if name not in method_names():
        also = f" (or the recipe {', '.join(recipes)})" if recipes else ""
        raise ValueError(f"unknown method {name!r}: expected one of {', '.join(METHODS)}{also}")
    spec = method_spec(name)
    if spec.is_recipe:
        raise ValueError(
            f"{name} is a recipe, not a method: fine-tune the teacher with Supervised(teacher, group='teacher'), "
            f"then build {spec.student_method!r} with the fine-tuned teacher (fourds.training runs both)"
        )
    method_class = spec.method_class()
    if not (isinstance(method_class, type) and issubclass(method_class, Method)):
        raise TypeError(f"method {name!r} is registered as {spec.implementation!r}, which is not a Method subclass")
    if spec.needs_teacher and teacher is None:
        raise ValueError(f"method {name!r} distils from a teacher: pass teacher= (the frozen source-domain classifier)")
    if student is None:
        student = _fresh_student(config, num_classes if num_classes is not None else _output_count(teacher, config))
    return method_class.from_config(config, teacher=teacher, student=student)


def _fresh_student(config: RunConfig, num_classes: int) -> nn.Module:
    return build_classifier(
        config.model.student_arch, num_classes, pretrained=config.model.pretrained, stem=config.model.stem
    )


def _output_count(teacher: nn.Module | None, config: RunConfig) -> int:
    if teacher is None:
        raise ValueError("to build a fresh student, pass num_classes= (or a teacher to copy the class count from)")
    modes = {module: module.training for module in teacher.modules()}
    side = config.data.image_size
    try:
        teacher.eval()  # a probe must not move BatchNorm statistics
        with torch.no_grad():
            logits = teacher(torch.zeros(1, 3, side, side, device=next(teacher.parameters()).device))
    finally:
        for module, training in modes.items():
            module.training = training
    return logits.shape[1]
