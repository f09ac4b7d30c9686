"""``fourds clean``: what killed runs leave behind, found and ended.

A run killed hard (SIGKILL, a lost node) cannot end its own records: its MLflow run stays
RUNNING, its orchestrator run "running", and its run folder keeps checkpoints and local
copies of models (hundreds of MB). A run is dead when nothing holds its domain's lock
(``fourds.operations.locks``: every pipeline run holds it from start to end, and the
kernel releases it when the process dies). Each domain is cleaned while holding its
lock, so a run that starts meanwhile waits for nothing and is never touched.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fourds.config import TrackingConfig
from fourds.operations.locks import DomainLocked, domain_lock
from fourds.workspace import Workspace

ENDED_BY_TAG = "fourds.ended_by"
ORCHESTRATOR_RUN_TAG = "fourds.zenml_run_id"
RUN_KINDS = ("distill", "teacher")
"""Prefixes of run names (``<kind>-<domain>-<YYYYmmdd>-<HHMMSS>-<hex>``, ``pipelines.launch.new_run_name``)."""


@dataclass
class Cleanup:
    """What ``clean`` found (``dry_run``) or did, by domain."""

    stale_mlflow_runs: list[str] = field(default_factory=list)
    """``<run name> (<run id>)`` of MLflow runs left RUNNING by a dead process."""
    stale_orchestrator_runs: list[str] = field(default_factory=list)
    """Names of the orchestrator's (ZenML's) runs of those domains that never finished."""
    run_folders: list[Path] = field(default_factory=list)
    freed_bytes: int = 0
    busy_domains: list[str] = field(default_factory=list)
    """Domains with a live run: left alone."""


class CannotJudgeLiveness(RuntimeError):
    """Runs are tracked in a shared store, where this workspace's locks cannot tell a dead run from a live one."""


def domain_of_run(run_name: str) -> str | None:
    """The domain in a fourds run name, or None for a name fourds did not make."""
    parts = run_name.split("-")
    if len(parts) < 5 or parts[0] not in RUN_KINDS:
        return None
    return "-".join(parts[1:-3]) or None


def clean_workspace(
    workspace: Workspace,
    tracking: TrackingConfig,
    *,
    dry_run: bool = False,
    end_orchestrator_runs: Callable[[list[str]], list[str]] | None = None,
) -> Cleanup:
    """End the MLflow runs and remove the run folders that dead runs left in ``workspace``.

    ``end_orchestrator_runs(run_ids)`` ends the orchestrator runs of the stale MLflow runs (their
    ``fourds.zenml_run_id`` tags) that never finished, and names them; it is called while the domain's lock
    is held (the app passes ZenML's). Only a workspace whose runs are tracked in
    its own SQLite store is judged: with a tracking server, runs of other machines and asynchronous cluster runs
    hold no lock here (:class:`CannotJudgeLiveness`).
    """
    from mlflow import MlflowClient

    from fourds.tracking import configure_mlflow
    from fourds.tracking.store import is_sqlite

    uri = configure_mlflow(workspace, tracking)
    if not is_sqlite(uri) or not uri.endswith(str(workspace.mlflow_db)):
        raise CannotJudgeLiveness(
            f"runs are tracked in {uri}, not in this workspace's own store: other machines' and asynchronous "
            "cluster runs hold no lock here, so a live run cannot be told from a dead one; end stale runs in "
            "the MLflow and ZenML UIs"
        )
    client = MlflowClient()
    running: dict[str, list] = {}
    experiments = [e for e in client.search_experiments() if e.name.startswith(tracking.experiment_prefix)]
    if experiments:
        for run in client.search_runs([e.experiment_id for e in experiments], filter_string="attributes.status = 'RUNNING'"):
            domain = run.data.tags.get("fourds.domain") or domain_of_run(run.info.run_name or "")
            if domain:
                running.setdefault(domain, []).append(run)
    folders: dict[str, list[Path]] = {}
    if workspace.runs_dir.is_dir():
        for folder in sorted(workspace.runs_dir.iterdir()):
            domain = domain_of_run(folder.name)
            if folder.is_dir() and domain:
                folders.setdefault(domain, []).append(folder)

    report = Cleanup()
    for domain in sorted(set(running) | set(folders)):
        try:
            with domain_lock(workspace, domain, on_takeover=lambda message: None):
                for run in running.get(domain, []):
                    report.stale_mlflow_runs.append(f"{run.info.run_name} ({run.info.run_id})")
                    if not dry_run:
                        client.set_tag(run.info.run_id, ENDED_BY_TAG, "fourds clean: no live run held the domain's lock")
                        client.set_terminated(run.info.run_id, "FAILED")
                orchestrator_ids = [run.data.tags[ORCHESTRATOR_RUN_TAG] for run in running.get(domain, [])
                                    if ORCHESTRATOR_RUN_TAG in run.data.tags]
                if end_orchestrator_runs is not None and orchestrator_ids and not dry_run:
                    report.stale_orchestrator_runs += end_orchestrator_runs(orchestrator_ids)
                for folder in folders.get(domain, []):
                    report.run_folders.append(folder)
                    report.freed_bytes += sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
                    if not dry_run:
                        shutil.rmtree(folder)
        except DomainLocked:
            report.busy_domains.append(domain)
    return report
