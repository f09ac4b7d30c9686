"""sha256 in one place: of a file's bytes, and of a JSON-able value in canonical form.

Hashes made here are recorded (config hashes in MLflow runs, checkpoint keys, benchmark
cell keys, ONNX and data-table hashes in the lineage), so their spelling must never move:
``canonical_json_sha256`` keeps, as parameters, the two JSON spellings that recorded
values were written with (compact separators by default; the spaced ones of
``json.dumps``'s own default for checkpoint keys).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

FILE_CHUNK_BYTES = 1 << 20
"""Read size when hashing a file: large files (archives, ONNX models) never sit whole in memory."""

COMPACT_SEPARATORS = (",", ":")
SPACED_SEPARATORS = (", ", ": ")
"""``json.dumps``'s default separators; checkpoint keys were first written with them."""


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(FILE_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_json_sha256(
    value: object,
    *,
    separators: tuple[str, str] = COMPACT_SEPARATORS,
    default: Callable[[object], object] | None = None,
) -> str:
    """Hex sha256 of ``value`` as JSON with sorted keys: equal values hash equal whatever their key order.

    ``default`` spells what JSON cannot (``str`` for paths); without it such a value is an error.
    """
    canonical = json.dumps(value, sort_keys=True, separators=separators, default=default)
    return hashlib.sha256(canonical.encode()).hexdigest()
