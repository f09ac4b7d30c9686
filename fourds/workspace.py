"""Where a fourds installation keeps its state: one folder, embedded stores by default.

Layout of a workspace root (the project root when you run from a clone)::

    data/                 DVC-tracked data folder (``data.dvc`` beside it)
      domains/<name>/     one ingested domain: images/<class>/<file> + images.csv
    .fourds/
      mlflow.db           MLflow tracking + model registry (SQLite)
      mlartifacts/        MLflow artifact store
      runs/<run>/         checkpoints, reports and exports of one run
      watch.lock          held by ``fourds watch`` while it runs
      locks/<domain>.lock held by a pipeline run of that domain, from ingest to promotion

The root is ``$FOURDS_HOME`` when set, else the current directory. ``$MLFLOW_TRACKING_URI``
(or ``TrackingConfig.tracking_uri``) points MLflow elsewhere, e.g. at a tracking server.

A domain's name becomes a folder name here and part of MLflow and ZenML names
(``fourds-student-<domain>``, ``fourds-<domain>``, ``distill-<domain>-...``), so it is
checked once, by :func:`check_domain_name`, before anything is created for it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DOMAIN_NAME_RULE = "1-100 letters, digits, '_', '.' or '-', starting with a letter or digit"
_DOMAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class DomainNameError(ValueError):
    """A domain name that cannot be a folder name and a model-name suffix; the message says what is allowed."""


def check_domain_name(name: str) -> str:
    """Return ``name`` when it is a valid domain name, else raise :class:`DomainNameError` saying why.

    One path component (no ``/``, ``\\``, ``..``, NUL or spaces) that MLflow and ZenML accept
    in model, experiment and run names.
    """
    if isinstance(name, str) and _DOMAIN_NAME.fullmatch(name):
        return name
    raise DomainNameError(f"invalid domain name {name!r}{_what_is_wrong(name)}: use {DOMAIN_NAME_RULE}")


def _what_is_wrong(name: object) -> str:
    if not isinstance(name, str):
        return f" (a {type(name).__name__}, not a string)"
    if not name.strip():
        return " (empty)"
    if len(name) > 100:
        return f" ({len(name)} characters)"
    bad = sorted({char for char in name if not (char.isascii() and (char.isalnum() or char in "_.-"))})
    if bad:
        return f" (contains {', '.join(repr(char) for char in bad)})"
    return " (starts with '.', '_' or '-')"


def _check_path_component(name: str, what: str) -> str:
    """A guard where the library builds paths: ``name`` must stay one folder below its parent."""
    if (not isinstance(name, str) or name in ("", ".", "..") or not name.strip()
            or any(char in name for char in "/\\\0")):
        raise ValueError(f"invalid {what} {name!r}: must be a single folder name (no '/', '\\', NUL, '.' or '..')")
    return name


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def default(cls) -> Workspace:
        return cls(Path(os.environ.get("FOURDS_HOME", ".")).resolve())

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def domains_dir(self) -> Path:
        return self.data_dir / "domains"

    def domain_dir(self, name: str) -> Path:
        return self.domains_dir / check_domain_name(name)

    @property
    def state_dir(self) -> Path:
        return self.root / ".fourds"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    def run_dir(self, run_name: str) -> Path:
        return self.runs_dir / _check_path_component(run_name, "run name")

    @property
    def locks_dir(self) -> Path:
        return self.state_dir / "locks"

    def domain_lock_file(self, name: str) -> Path:
        """The lock a pipeline run of domain ``name`` holds (see :mod:`fourds.operations.locks`)."""
        return self.locks_dir / f"{check_domain_name(name)}.lock"

    @property
    def mlflow_db(self) -> Path:
        return self.state_dir / "mlflow.db"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.state_dir / "mlartifacts"

    def tracking_uri(self, configured: str | None = None) -> str:
        """Configured URI, else $MLFLOW_TRACKING_URI, else SQLite inside the workspace."""
        return configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.mlflow_db}"

    def ensure(self) -> Workspace:
        for folder in (self.domains_dir, self.runs_dir, self.mlflow_artifacts_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self
