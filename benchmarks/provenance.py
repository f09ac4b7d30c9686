"""Where the numbers came from: machine, code commit, command, load average, data checksums."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import onnxruntime
import torch
import torchvision

REPO_ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict:
    return {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "onnxruntime": onnxruntime.__version__,
        "accelerator": "none (CPU only)" if not torch.cuda.is_available() else torch.cuda.get_device_name(0),
    }


def git_state() -> dict:
    """Commit, and whether the working tree differs from it (with the differing paths)."""
    try:
        commit = _git("rev-parse", "HEAD")
        changed = [line[3:] for line in _git("status", "--porcelain").splitlines() if line]
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None, "changed_paths": []}
    return {
        "commit": commit,
        "dirty": bool(changed),
        "changed_paths": changed,
        "benchmark_code_changed": any(path.startswith("benchmarks/") and path.endswith(".py") for path in changed),
    }


def command_line() -> str:
    """The command as it would be typed again from the repository root."""
    return shlex.join([Path(sys.executable).name, "-m", "benchmarks.run", *sys.argv[1:]])


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None
