"""The lineage facts of one registered student, as MLflow model-version tags.

An auditor asks: which data, which teacher, which code and settings produced the
model serving domain X, and did the data pass validation? Every answer is one field
of :class:`LineageRecord`, stored as a ``fourds.<field>`` tag on the model version so
that it travels with the version and survives the run that created it.
"""

from __future__ import annotations

import math
import os
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path

TAG_PREFIX = "fourds."
METRIC_TAG_PREFIX = TAG_PREFIX + "metric."
MISSING_TAG = TAG_PREFIX + "lineage_missing"
CODE_COMMIT_ENV = "FOURDS_CODE_COMMIT"
_COUNT_FIELDS = ("data_unlabelled_images", "data_unlabelled_images_used")
OPTIONAL_FACTS = ("data_git_revision",)
"""Facts that are whole numbers; every other fact is text, except ``gx_success``."""

_PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LineageRecord:
    """Where a student came from. ``None`` means the fact was not known when it was registered."""

    domain: str | None = None
    method: str | None = None
    """The distillation method the run was configured with."""
    student_method: str | None = None
    """The method that produced the registered student: ``method``, or ``student_scratch`` when the
    scratch guard found a plain student more accurate on validation."""
    guard: str | None = None
    """The scratch guard's outcome with the validation accuracies it compared, or ``off``."""
    data_domain_md5: str | None = None
    """DVC md5 of the domain's folder (``data/domains/<name>``)."""
    data_md5: str | None = None
    """DVC md5 of the whole data folder as tracked by ``data.dvc``."""
    data_dvc_remote: str | None = None
    """The DVC remote that holds data version ``data_md5`` (a folder or ``s3://...``): where an audit pulls it from."""
    data_git_revision: str | None = None
    """Git revision holding the ``data.dvc`` file that points at ``data_md5``."""
    table_sha256: str | None = None
    """sha256 of the domain's ``images.csv`` (the exact images, labels and splits used)."""
    data_unlabelled_images: int | None = None
    """How many of the domain's images have no label (split ``unlabelled`` in ``images.csv``)."""
    data_unlabelled_images_used: int | None = None
    """How many unlabelled images the student's training drew from (0 with ``data.unlabelled_batch_ratio`` 0)."""
    teacher_model_name: str | None = None
    """Registered teacher name, or the weights file path of an imported teacher."""
    teacher_version: str | None = None
    """Registry version of the teacher, or ``sha256:<hex>`` of its weights file."""
    teacher_data_md5: str | None = None
    """DVC md5 of the source data the teacher was trained on."""
    code_commit: str | None = None
    config_hash: str | None = None
    zenml_run_id: str | None = None
    gx_success: bool | None = None
    gx_result_uri: str | None = None
    onnx_sha256: str | None = None
    mlflow_run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    """Key metrics (test accuracy, ONNX parity, latency, size): what promotion compares."""

    def missing(self) -> list[str]:
        """Names of the facts this record does not know. The git revision of ``data.dvc`` is optional: a step in
        its own pod has no git checkout, and the data version is identified by its md5 in the DVC remote."""
        missing = [f.name for f in fields(self)
                   if f.name not in ("metrics", *OPTIONAL_FACTS) and getattr(self, f.name) is None]
        if not self.metrics:
            missing.append("metrics")
        return missing

    def to_tags(self) -> dict[str, str]:
        """``fourds.<field>`` tags (metrics as ``fourds.metric.<name>``); unknown facts are listed, not written."""
        tags: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "metrics" or value is None:
                continue
            tags[TAG_PREFIX + f.name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        for name, value in self.metrics.items():
            tags[METRIC_TAG_PREFIX + name] = repr(float(value))
        missing = self.missing()
        if missing:
            tags[MISSING_TAG] = ",".join(missing)
        return tags

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> LineageRecord:
        """Rebuild a record from model-version tags; absent facts stay ``None`` (see :meth:`missing`)."""
        values: dict = {}
        for f in fields(cls):
            if f.name == "metrics":
                continue
            raw = tags.get(TAG_PREFIX + f.name)
            if raw is None:
                continue
            if f.name == "gx_success":
                values[f.name] = _parse_bool(raw, TAG_PREFIX + f.name)
            elif f.name in _COUNT_FIELDS:
                values[f.name] = _parse_count(raw, TAG_PREFIX + f.name)
            else:
                values[f.name] = raw
        metrics = {}
        for key, raw in tags.items():
            if key.startswith(METRIC_TAG_PREFIX):
                name = key[len(METRIC_TAG_PREFIX) :]
                try:
                    metrics[name] = float(raw)
                except ValueError as exc:
                    raise ValueError(f"lineage tag {key!r} is not a number: {raw!r}") from exc
        return cls(**values, metrics=metrics)

    def metric(self, name: str) -> float | None:
        """A metric by name, or None when absent or not a finite number."""
        value = self.metrics.get(name)
        return value if value is not None and math.isfinite(value) else None


def _parse_count(raw: str, key: str) -> int:
    if not raw.strip().isdecimal():
        raise ValueError(f"lineage tag {key!r} must be a count (an integer >= 0), got {raw!r}")
    return int(raw)


def _parse_bool(raw: str, key: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"lineage tag {key!r} must be true or false, got {raw!r}")


def code_commit(repo: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of the project, suffixed ``-dirty`` when tracked files changed.

    Returns ``"unknown"`` outside a git checkout (e.g. an installed wheel) or without git.
    ``$FOURDS_CODE_COMMIT`` wins when set: the launcher sets it from the checkout that
    started a run, so steps in a container image without ``.git`` still know their code.
    """
    pinned = os.environ.get(CODE_COMMIT_ENV, "").strip()
    if repo is None and pinned:
        return pinned
    if repo is None and not (_PROJECT_ROOT / "pyproject.toml").is_file():
        return "unknown"  # an installed package: any enclosing git repository is not ours
    where = Path(repo) if repo is not None else _PROJECT_ROOT
    try:
        head = _git(where, "rev-parse", "HEAD")
        dirty = _git(where, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def _git(where: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", "-C", str(where), *args], capture_output=True, text=True, check=True, timeout=30
    )
    return completed.stdout.strip()
