"""4Ds and its baselines behind one interface (``fourds.method.base.Method``).

Methods are declared by name in :mod:`fourds.method.registry`; ``build_method`` builds
one from a RunConfig. ``two_stage`` is registered as a recipe, not a class: ``fourds.training``
fine-tunes the teacher with ``Supervised``, then runs ``KnowledgeDistillation`` from it.

Importing this package imports no torch (``fourds.config`` reads the registry through
it); the names below that need torch are imported from their modules on first use.
"""

from __future__ import annotations

import importlib

from fourds.method.registry import MethodSpec, method_names, method_spec, register_method

_MODULE_OF = {
    "AdaptedTeacher": "fourds.method.adapted_teacher",
    "LogitsOnly": "fourds.method.adapted_teacher",
    "load_adapted_teacher": "fourds.method.adapted_teacher",
    "save_adapted_teacher": "fourds.method.adapted_teacher",
    "Method": "fourds.method.base",
    "StepOutput": "fourds.method.base",
    "KnowledgeDistillation": "fourds.method.baselines",
    "Supervised": "fourds.method.baselines",
    "METHODS": "fourds.method.build",
    "build_method": "fourds.method.build",
    "FourDs": "fourds.method.fourds",
    "FourierAdapter": "fourds.method.fourier",
    "phase_map": "fourds.method.fourier",
    "FusionActivation": "fourds.method.fusion",
    "kd_loss": "fourds.method.losses",
    "softened_kl": "fourds.method.losses",
}

__all__ = sorted(["MethodSpec", "method_names", "method_spec", "register_method", *_MODULE_OF])


def __getattr__(name: str) -> object:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value
