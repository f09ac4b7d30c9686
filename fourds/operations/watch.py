"""``fourds watch``: find new domains and changed data, and distil each of them, one at a time.

One pass per call, for cron or a systemd timer. A pass

1. scans the domains source: a folder of domain folders (``<source>/<domain>/<class>/<file>``),
   or the workspace's DVC-tracked data folder (``data/domains/<domain>``);
2. fingerprints each domain with DVC's directory md5 (:func:`fourds.data.versioning.directory_md5`,
   the hash ``dvc add`` records) and compares it with the md5 of the last *successful* run
   of that domain: new and changed domains are due, the others are not;
3. runs the distill pipeline for each due domain in turn, recording a success only once
   its run has finished (so a failed or interrupted run is retried by the next pass).

Where the last successful run is remembered: ``.fourds/watch-state.json`` in the
workspace, rewritten atomically after each success. Not the registry's lineage tags,
because those hold the md5 of the *ingested* domain folder (images plus the per-image
table), which cannot be compared with a raw source folder without ingesting it first.

A lock file (``.fourds/watch.lock``, an ``flock`` held for the whole pass, see
:mod:`fourds.operations.locks`) keeps two watchers from running at once. The kernel drops
the lock when its holder exits, even on a crash, so a leftover file from a dead watcher
never blocks the next one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fourds.exit_codes import EXIT_NOT_PROMOTED, EXIT_OK, EXIT_RUN_FAILED
from fourds.operations.locks import LockHeld, exclusive_lock
from fourds.workspace import DomainNameError, Workspace, check_domain_name

STATE_FILE = "watch-state.json"
LOCK_FILE = "watch.lock"


class WatchLocked(LockHeld):
    """Another ``fourds watch`` is running on the same workspace."""

    def __init__(self, lock_path: Path, holder: str):
        super().__init__(
            f"another fourds watch is running on this workspace ({holder}); it holds {lock_path}. "
            "This pass did nothing; the next one will pick up whatever is still due.",
            lock_path=lock_path,
            holder=holder,
        )


class WatchSourceError(ValueError):
    """The domains source does not exist or is not a folder."""


@dataclass(frozen=True)
class WatchedDomain:
    """One domain found in the source, with the md5 of its content now."""

    name: str
    folder: Path
    """What the distill pipeline ingests (a raw image folder, or an ingested domain's ``images/``)."""
    md5: str | None
    """DVC directory md5 of the domain's folder; None when it could not be hashed (see ``problem``)."""
    problem: str | None = None
    """Why this folder cannot be run (an invalid domain name, an unreadable folder)."""


@dataclass(frozen=True)
class Decision:
    """What a pass does with one domain, and why."""

    domain: WatchedDomain
    action: str
    """``new`` or ``changed`` (due); ``unchanged`` or ``excluded`` (not due); ``invalid`` (cannot run)."""
    previous_md5: str | None = None

    @property
    def due(self) -> bool:
        return self.action in ("new", "changed")

    def describe(self) -> str:
        name = self.domain.name
        if self.action == "new":
            return f"new        {name}  md5 {self.domain.md5}"
        if self.action == "changed":
            return f"changed    {name}  md5 {self.previous_md5} -> {self.domain.md5}"
        if self.action == "unchanged":
            return f"unchanged  {name}  md5 {self.domain.md5}"
        if self.action == "excluded":
            return f"excluded   {name}  ({self.domain.problem})"
        return f"invalid    {name}  {self.domain.problem}"


@dataclass
class WatchPlan:
    source: Path
    ingested: bool
    """True when the source is the workspace's own DVC-tracked data folder."""
    decisions: list[Decision]

    @property
    def due(self) -> list[Decision]:
        return [decision for decision in self.decisions if decision.due]

    @property
    def invalid(self) -> list[Decision]:
        return [decision for decision in self.decisions if decision.action == "invalid"]


@dataclass(frozen=True)
class RunSummary:
    """What a runner reports about one successful distill run."""

    run_name: str
    model_version: str | None = None
    promoted: bool | None = None


DomainRunner = Callable[[WatchedDomain], RunSummary]
"""Runs the distill pipeline for one domain; raises when the run fails."""


@dataclass
class DomainOutcome:
    decision: Decision
    summary: RunSummary | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.error is None


@dataclass
class WatchReport:
    plan: WatchPlan
    outcomes: list[DomainOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[DomainOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.succeeded]

    @property
    def not_promoted(self) -> list[DomainOutcome]:
        """Successful runs whose student stayed challenger."""
        return [o for o in self.outcomes if o.succeeded and o.summary is not None and o.summary.promoted is False]

    @property
    def exit_code(self) -> int:
        if self.failed or self.plan.invalid:
            return EXIT_RUN_FAILED
        return EXIT_NOT_PROMOTED if self.not_promoted else EXIT_OK


# --- state of the last successful run per domain ------------------------------------------------


def state_path(workspace: Workspace) -> Path:
    return workspace.state_dir / STATE_FILE


def load_state(workspace: Workspace) -> dict[str, dict]:
    """Last successful run per domain: ``{domain: {"md5", "folder", "run_name", ...}}``."""
    path = state_path(workspace)
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); fix or delete it (every domain would run again)") from exc
    domains = state.get("domains") if isinstance(state, dict) else None
    if not isinstance(domains, dict):
        raise ValueError(f"{path}: expected {{\"domains\": {{...}}}}; fix or delete it (every domain would run again)")
    return domains


def record_success(workspace: Workspace, domain: WatchedDomain, summary: RunSummary, md5: str) -> None:
    """Remember that ``domain`` at ``md5`` was run successfully (atomic rewrite of the state file)."""
    domains = load_state(workspace)
    domains[domain.name] = {
        "md5": md5,
        "folder": str(domain.folder),
        "run_name": summary.run_name,
        "model_version": summary.model_version,
        "succeeded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = state_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps({"domains": domains}, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)


# --- scanning and planning ---------------------------------------------------------------------


def is_workspace_data(source: Path, workspace: Workspace) -> bool:
    """Whether ``source`` is the workspace's DVC-tracked data folder (or its ``domains/``)."""
    resolved = source.resolve()
    return resolved in (workspace.data_dir.resolve(), workspace.domains_dir.resolve())


def scan_domains(source: Path, workspace: Workspace) -> list[WatchedDomain]:
    """Every domain folder under ``source`` with its DVC md5, sorted by name.

    A folder of domain folders: each sub-folder is a domain (``<class>/<file>`` inside).
    The workspace's data folder: each ingested ``data/domains/<name>``; its ``images/``
    is what a run re-ingests. Hidden folders and ingests in progress are left out.
    """
    from fourds.data.ingest import IMAGES_FOLDER
    from fourds.data.versioning import STAGING_PREFIX, DataVersionError, directory_md5

    if not source.is_dir():
        raise WatchSourceError(f"domains source {source}: not an existing folder")
    ingested = is_workspace_data(source, workspace)
    parent = workspace.domains_dir if ingested else source
    if ingested and not parent.is_dir():
        return []

    domains = []
    for folder in sorted(parent.iterdir()):
        if not folder.is_dir() or folder.name.startswith((".", STAGING_PREFIX)):
            continue
        run_folder = folder / IMAGES_FOLDER if ingested else folder
        try:
            check_domain_name(folder.name)
        except DomainNameError as exc:  # reported as invalid; the other domains still run
            domains.append(WatchedDomain(folder.name, run_folder, None, problem=str(exc)))
            continue
        if ingested and not run_folder.is_dir():
            domains.append(WatchedDomain(folder.name, run_folder, None, problem=f"{run_folder} is missing"))
            continue
        try:
            md5 = directory_md5(workspace, folder)
        except (DataVersionError, OSError) as exc:
            domains.append(WatchedDomain(folder.name, run_folder, None, problem=f"cannot hash {folder}: {exc}"))
            continue
        domains.append(WatchedDomain(folder.name, run_folder, md5))
    return domains


def plan_watch(source: Path, workspace: Workspace, exclude: dict[str, str] | None = None) -> WatchPlan:
    """Compare every domain in ``source`` with its last successful run; change nothing.

    ``exclude`` maps domain names never to run to the reason, shown in the plan.
    """
    exclude = exclude or {}
    state = load_state(workspace)
    decisions = []
    for domain in scan_domains(source, workspace):
        previous = state.get(domain.name, {}).get("md5")
        if domain.name in exclude:
            domain = WatchedDomain(domain.name, domain.folder, domain.md5, problem=exclude[domain.name])
            action = "excluded"
        elif domain.problem:
            action = "invalid"
        elif previous is None:
            action = "new"
        elif previous != domain.md5:
            action = "changed"
        else:
            action = "unchanged"
        decisions.append(Decision(domain, action, previous))
    return WatchPlan(source=source.resolve(), ingested=is_workspace_data(source, workspace), decisions=decisions)


# --- running -------------------------------------------------------------------------------------


def run_watch(
    plan: WatchPlan,
    workspace: Workspace,
    runner: DomainRunner,
    *,
    echo: Callable[[str], None] = print,
) -> WatchReport:
    """Run every due domain of ``plan``, one at a time; a failure does not stop the others."""
    from fourds.data.versioning import directory_md5

    report = WatchReport(plan)
    for decision in plan.due:
        domain = decision.domain
        echo(f"distill {domain.name} ({decision.action}) from {domain.folder}")
        started = time.perf_counter()
        try:
            summary = runner(domain)
        except Exception as exc:  # a failed run is reported and retried by the next pass
            outcome = DomainOutcome(decision, error=f"{type(exc).__name__}: {exc}")
        else:
            # An ingested domain is rewritten by its own run: remember what the run left,
            # so the next pass does not mistake that for new data.
            md5 = directory_md5(workspace, domain.folder.parent) if plan.ingested else domain.md5
            record_success(workspace, domain, summary, md5)
            outcome = DomainOutcome(decision, summary=summary)
        outcome.seconds = time.perf_counter() - started
        echo(describe_outcome(outcome))
        report.outcomes.append(outcome)
    return report


def describe_outcome(outcome: DomainOutcome) -> str:
    name = outcome.decision.domain.name
    if not outcome.succeeded:
        return f"FAILED     {name} after {outcome.seconds:.0f}s: {outcome.error}"
    summary = outcome.summary
    version = f", model version {summary.model_version}" if summary.model_version else ""
    promoted = {True: ", promoted to champion", False: ", not promoted", None: ""}[summary.promoted]
    return f"ok         {name} in {outcome.seconds:.0f}s: run {summary.run_name}{version}{promoted}"


# --- the lock --------------------------------------------------------------------------------------


def lock_path(workspace: Workspace) -> Path:
    return workspace.state_dir / LOCK_FILE


@contextmanager
def watch_lock(workspace: Workspace, *, on_takeover: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold the workspace's watch lock for the duration of the block, or raise :class:`WatchLocked`.

    One :func:`fourds.operations.locks.exclusive_lock`: a file left by a killed watcher is taken over.
    Each domain's run inside the pass takes that domain's own lock (another file), so a pass never
    waits for itself; a domain whose lock another run holds fails for this pass and is retried by the next.
    """
    path = lock_path(workspace)
    with exclusive_lock(path, refused=lambda holder: WatchLocked(path, holder), on_takeover=on_takeover):
        yield path


def summarize(report: WatchReport) -> str:
    ran = len(report.outcomes)
    failed = len(report.failed)
    invalid = len(report.plan.invalid)
    unchanged = sum(1 for decision in report.plan.decisions if decision.action == "unchanged")
    not_promoted = len(report.not_promoted)
    return (f"watch: {ran} run(s), {ran - failed} succeeded ({not_promoted} not promoted), {failed} failed; "
            f"{unchanged} unchanged; {invalid} invalid")

