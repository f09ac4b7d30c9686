"""The Kubeflow extra stays an addition to the base install: same pins, plus its own packages.

requirements-kubeflow.lock is resolved from requirements.in + requirements-kubeflow.in
(`make lock-kubeflow`). When the base lock moves and this one is not re-resolved, CI's
Kubeflow environment would test other versions than the product ships: caught here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# kfp 2.x needs protobuf < 7; the base resolves protobuf 7. The only pin allowed to differ.
ALLOWED_TO_DIFFER = {"protobuf"}


def pins(lock_file: Path) -> dict[str, str]:
    found = {}
    for line in lock_file.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", line)
        if match:
            found[re.sub(r"\[.*\]", "", match[1]).lower()] = match[2]
    return found


def requirement_lines(in_file: Path) -> list[str]:
    return [line.strip() for line in in_file.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_kubeflow_lock_keeps_every_base_pin():
    base = pins(ROOT / "requirements.lock")
    kubeflow = pins(ROOT / "requirements-kubeflow.lock")

    missing = sorted(set(base) - set(kubeflow))
    moved = sorted(name for name in set(base) & set(kubeflow) - ALLOWED_TO_DIFFER if base[name] != kubeflow[name])
    assert not missing and not moved, (
        f"requirements-kubeflow.lock is stale (missing {missing}, other versions {moved}): run `make lock-kubeflow`"
    )
    assert {"kfp", "kfp-kubernetes", "kubernetes", "s3fs"} <= set(kubeflow)
    assert kubeflow["opentelemetry-api"] == kubeflow["opentelemetry-sdk"] == base["opentelemetry-sdk"]


def test_pyproject_extras_declare_what_the_lock_was_resolved_from():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    declared = set(extras["kubernetes"]) | (set(extras["kubeflow"]) - {"fourds[kubernetes]"})

    assert declared == set(requirement_lines(ROOT / "requirements-kubeflow.in"))
