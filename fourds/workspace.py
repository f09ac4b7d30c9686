"""Where a fourds installation keeps its state: one folder, embedded stores by default.

Layout of a workspace root (the project root when you run from a clone)::

    data/                 DVC-tracked data folder (``data.dvc`` beside it)
      domains/<name>/     one ingested domain: images/<class>/<file> + images.csv
    .fourds/
      mlflow.db           MLflow tracking + model registry (SQLite)
      mlartifacts/        MLflow artifact store
      runs/<run>/         checkpoints, reports and exports of one run
      watch.lock          held by ``fourds watch`` while it runs

The root is ``$FOURDS_HOME`` when set, else the current directory. ``$MLFLOW_TRACKING_URI``
(or ``TrackingConfig.tracking_uri``) points MLflow elsewhere, e.g. at a tracking server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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
        return self.domains_dir / name

    @property
    def state_dir(self) -> Path:
        return self.root / ".fourds"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    def run_dir(self, run_name: str) -> Path:
        return self.runs_dir / run_name

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
