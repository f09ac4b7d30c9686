"""Device selection, in one place: nothing else in the library names a device.

The accepted names are checked without importing torch (:func:`check_device_name`), so a
configuration is refused when it is loaded, not when training starts.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_NAMES = "auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps"
_DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def check_device_name(requested: str) -> str:
    """Return ``requested`` when it names a device fourds can use, else raise a ValueError listing the names."""
    if not isinstance(requested, str) or not _DEVICE_NAME.fullmatch(requested):
        raise ValueError(f"unknown device {requested!r}: use {DEVICE_NAMES}")
    return requested


def select_device(requested: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU; an explicit CUDA or MPS request without it is an error."""
    import torch

    check_device_name(requested)
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} was requested but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"device {requested!r} was requested but MPS is not available on this machine")
    return device
