"""Training checkpoints: written atomically, read without pickle, refused when they do not fit.

A checkpoint holds only tensors and plain containers so that ``torch.load(weights_only=True)``
can read it: loading a checkpoint never runs code from the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fourds.config import TrainConfig
from fourds.hashing import canonical_json_sha256

CHECKPOINT_FORMAT = 1
# Fields that change how a run is displayed or where it runs, not what it computes.
_FIELDS_FREE_ON_RESUME = ("progress", "device")


class CheckpointMismatchError(ValueError):
    """A checkpoint was written by a different method, configuration or training set."""


def save_checkpoint(payload: dict, path: Path) -> None:
    """Write ``payload`` so that ``path`` is always either the old or the new checkpoint, whole.

    The file is written beside its destination, flushed to disk, then renamed over it:
    a crash or Ctrl-C mid-write leaves the previous checkpoint valid.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint on the CPU, tensors and plain containers only."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign or damaged files
        raise CheckpointMismatchError(f"{path}: not a readable fourds checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointMismatchError(f"{path}: not a fourds training checkpoint (format {CHECKPOINT_FORMAT})")
    return payload


def resumable_config(config: TrainConfig) -> dict:
    """The part of a TrainConfig a resumed run must share with the checkpoint, as plain data."""
    dumped = config.model_dump(mode="json")
    for name in _FIELDS_FREE_ON_RESUME:
        dumped.pop(name)
    return dumped


def config_fingerprint(config: TrainConfig) -> str:
    """sha256 of :func:`resumable_config` in canonical JSON."""
    return canonical_json_sha256(resumable_config(config))


def check_compatible(payload: dict, path: Path, *, identity: dict, config: TrainConfig) -> None:
    """Refuse to resume from a checkpoint written by another method, config or training set.

    ``identity`` holds what the checkpoint must match besides the config (method name,
    batch size, training-set size, the caller's checkpoint key); every difference is
    named in the error, with the checkpoint's value first.
    """
    problems = [
        f"{key}: {payload.get(key)!r} in the checkpoint, {value!r} now"
        for key, value in identity.items()
        if payload.get(key) != value
    ]
    if payload.get("config_fingerprint") != config_fingerprint(config):
        saved, current = payload.get("train_config", {}), resumable_config(config)
        changed = sorted(key for key in saved.keys() | current.keys() if saved.get(key) != current.get(key))
        problems += [f"train.{key}: {saved.get(key)!r} in the checkpoint, {current.get(key)!r} now" for key in changed]
        if not changed:
            problems.append("train config fingerprint differs")
    if problems:
        raise CheckpointMismatchError(
            f"{path} was written by a different run and cannot be resumed here ("
            + "; ".join(problems)
            + "). Use another checkpoint folder, or fit(resume=False) to start over and overwrite it."
        )
