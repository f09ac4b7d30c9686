"""Seeding and random-number-generator state, in one place.

A run is reproducible when every source of randomness starts from the run's seed
(:func:`seed_everything`) and an interrupted run puts every generator back where it
was (:func:`capture_rng_state` into the checkpoint, :func:`restore_rng_state` on resume).
"""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device).

    ``deterministic`` also asks torch for deterministic kernels; ``warn_only`` keeps
    operations without a deterministic implementation usable (they warn instead of
    failing). It is a process-wide switch, so it is only ever turned on here.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS reads this when it first initialises; without it, CUDA matmuls may vary.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def derived_seed(seed: int, *parts: int | str) -> int:
    """A 63-bit seed for one named stream of a run (e.g. the shuffle of epoch 3).

    Hashing keeps streams independent: (seed 1, epoch 0) and (seed 0, epoch 1) differ.
    """
    text = ":".join(str(part) for part in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def capture_rng_state() -> dict:
    """Every global generator's state, as tensors and plain containers (loadable with weights_only)."""
    numpy_kind, numpy_keys, numpy_pos, numpy_has_gauss, numpy_gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": numpy_kind,
            "keys": torch.from_numpy(numpy_keys.astype(np.int64)),
            "pos": int(numpy_pos),
            "has_gauss": int(numpy_has_gauss),
            "cached_gaussian": float(numpy_gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: dict) -> None:
    """Put back the generators saved by :func:`capture_rng_state`."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        if len(state["cuda"]) != torch.cuda.device_count():
            raise RuntimeError(
                f"the checkpoint saved the RNG state of {len(state['cuda'])} CUDA device(s), "
                f"this machine has {torch.cuda.device_count()}: exact resume is not possible"
            )
        torch.cuda.set_rng_state_all(state["cuda"])
