"""Every training method by name: the one place a method is declared.

``RunConfig.method`` is checked against these names, ``build_method`` builds the class an
entry names, ``fourds.training.distill`` reads from the entry what to run (is there a
teacher to distil from, is it fine-tuned first), and the benchmark lists the methods
from here. Importing this module imports no torch: a method's class is named by an
import string and imported when the method is first built, so ``fourds.config`` stays
light.

Adding a method is one module and one registration. Write a
:class:`~fourds.method.base.Method` subclass with a ``from_config`` classmethod, then
register it below (a built-in method) or from your own code before a config naming
it is read::

    register_method("mymethod", "mypackage.mymethod:MyMethod", needs_teacher=True)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class MethodSpec:
    """What the library needs to know about a method before building it."""

    name: str
    implementation: str | type | None
    """The Method subclass, or ``"module:Class"`` for it (imported on first build); None for a recipe,
    which trains the student with another registered method (``student_method``)."""
    needs_teacher: bool
    """Distils from the source teacher: ``build_method`` requires one, and the scratch guard applies."""
    finetune_teacher: bool
    """Fine-tune a copy of the teacher on the target labels (``RunConfig.teacher_train``) before the
    student stage, and distil from that copy (two_stage)."""
    student_method: str
    """The registered method whose class trains the student: the method itself unless it is a recipe."""

    @property
    def is_recipe(self) -> bool:
        return self.implementation is None

    def method_class(self) -> type:
        """The class that trains the student (a recipe's ``student_method``'s class), imported now if named by a string."""
        implementation = method_spec(self.student_method).implementation
        if not isinstance(implementation, str):
            return implementation
        module_name, _, class_name = implementation.partition(":")
        return getattr(importlib.import_module(module_name), class_name)


_METHODS: dict[str, MethodSpec] = {}


def register_method(
    name: str,
    implementation: str | type | None = None,
    *,
    needs_teacher: bool = False,
    finetune_teacher: bool = False,
    student_method: str | None = None,
) -> MethodSpec:
    """Declare the method ``name``: its class (``implementation``), or for a recipe the ``student_method``
    that trains its student. Raises ValueError for a taken name or an inconsistent entry."""
    if not name or name != name.strip():
        raise ValueError(f"a method name must be non-empty without surrounding spaces, got {name!r}")
    if name in _METHODS:
        raise ValueError(f"method {name!r} is already registered ({_METHODS[name].implementation or 'a recipe'})")
    if (implementation is None) == (student_method is None):
        raise ValueError(
            f"method {name!r}: give either its class (implementation=) or, for a recipe, the registered method "
            "that trains its student (student_method=)"
        )
    if isinstance(implementation, str) and not all(implementation.partition(":")[::2]):
        raise ValueError(f"method {name!r}: implementation must read 'module:Class', got {implementation!r}")
    if student_method is not None:
        trainer = method_spec(student_method)
        if trainer.is_recipe:
            raise ValueError(f"method {name!r}: student_method {student_method!r} is a recipe, not a method with a class")
        if trainer.needs_teacher and not needs_teacher:
            raise ValueError(f"method {name!r}: its student method {student_method!r} needs a teacher; set needs_teacher=True")
    if finetune_teacher and not needs_teacher:
        raise ValueError(f"method {name!r}: fine-tuning the teacher needs a teacher; set needs_teacher=True")
    spec = MethodSpec(
        name=name,
        implementation=implementation,
        needs_teacher=needs_teacher,
        finetune_teacher=finetune_teacher,
        student_method=student_method or name,
    )
    _METHODS[name] = spec
    return spec


def method_names() -> tuple[str, ...]:
    """Every registered method, in registration order."""
    return tuple(_METHODS)


def method_spec(name: str) -> MethodSpec:
    """The entry of ``name``; ValueError naming the valid names when there is none."""
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}: expected one of {', '.join(_METHODS)}") from None


register_method("4ds", "fourds.method.fourds:FourDs", needs_teacher=True)
register_method("kd", "fourds.method.baselines:KnowledgeDistillation", needs_teacher=True)
register_method("two_stage", needs_teacher=True, finetune_teacher=True, student_method="kd")
register_method("student_scratch", "fourds.method.baselines:Supervised")
