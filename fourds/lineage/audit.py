"""``fourds lineage``: the audit chain of a registered student, every link checked, none skipped.

Starting from a registry reference (``MODEL``, ``MODEL@ALIAS`` or ``MODEL/VERSION``) the
audit follows the lineage tags written at registration (:class:`LineageRecord`) and
checks each against the system that owns the fact:

registry version -> MLflow run -> ZenML run and its steps -> data (DVC md5s, git
revision, per-image table hash and its count of unlabelled images, all re-derived from
the DVC cache) -> Great Expectations result -> teacher version and the md5 of its
training data -> code commit and configuration (re-hashed from the run's logged config)
-> ONNX file (re-hashed from the registry's stored copy).

Each link ends ``ok``, ``missing`` (a fact or a record cannot be found) or ``mismatch``
(two records disagree). The audit is complete only when every link is ``ok``; notes
(data changed since, uncommitted code, unlabelled-image counts a version registered
before they existed lacks) are reported without failing it.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fourds.config import TrackingConfig
from fourds.hashing import file_sha256
from fourds.lineage.record import LineageRecord
from fourds.workspace import Workspace

OK, MISSING, MISMATCH = "ok", "missing", "mismatch"


@dataclass
class Link:
    """One link of the chain: what was found, and what is wrong with it."""

    name: str
    facts: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.mismatches:
            return MISMATCH
        return MISSING if self.missing else OK

    def require(self, label: str, value: Any) -> Any:
        """Record ``value`` as a fact, or ``label`` as missing when it is None or empty."""
        self.facts[label] = value
        if value is None or value == "":
            self.missing.append(f"{label} is not recorded")
        return value

    def compare(self, what: str, recorded: Any, found: Any, where: str) -> None:
        if recorded is not None and found is not None and str(recorded) != str(found):
            self.mismatches.append(f"{what}: the lineage tags record {recorded}, {where} has {found}")

    def as_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "facts": self.facts, "missing": self.missing,
                "mismatches": self.mismatches, "notes": self.notes}


@dataclass
class LineageAudit:
    reference: str
    model_name: str
    version: str
    links: list[Link]

    @property
    def complete(self) -> bool:
        return all(link.status == OK for link in self.links)

    def as_dict(self) -> dict:
        return {"reference": self.reference, "model_name": self.model_name, "version": self.version,
                "complete": self.complete, "links": [link.as_dict() for link in self.links]}


def trace_lineage(
    reference: str,
    workspace: Workspace,
    tracking: TrackingConfig | None = None,
    *,
    read_orchestrator_run: OrchestratorRunReader | None = None,
) -> LineageAudit:
    """Audit the registered version ``reference`` names (bare MODEL = MODEL@champion, the one serving).

    ``read_orchestrator_run`` reads the pipeline run the version came from (the app passes
    ZenML's); without it the ZenML link is reported missing, never assumed.

    Raises :class:`fourds.registry.RegistryError` when no such version exists.
    """
    from mlflow import MlflowClient

    from fourds.registry import CHAMPION, resolve_model_version
    from fourds.tracking import configure_mlflow

    configure_mlflow(workspace, tracking)
    client = MlflowClient()
    if "@" not in reference and "/" not in reference.removeprefix("models:/"):
        reference = f"{reference}@{CHAMPION}"
    version = resolve_model_version(reference)
    record = LineageRecord.from_tags(version.tags)
    links = [
        registry_link(version, record),
        mlflow_run_link(client, version, record),
        zenml_run_link(record, read_orchestrator_run),
        data_link(record, workspace),
        validation_link(record),
        teacher_link(client, record),
        code_link(client, record),
        onnx_link(client, version, record),
    ]
    return LineageAudit(reference=reference, model_name=version.name, version=str(version.version), links=links)


# --- the links -----------------------------------------------------------------------------------


def registry_link(version, record: LineageRecord) -> Link:
    link = Link("registry version")
    link.facts.update(model=version.name, version=str(version.version), aliases=sorted(version.aliases or []),
                      created=_millis_to_iso(version.creation_timestamp), source=version.source)
    link.require("domain", record.domain)
    link.require("method", record.method)
    link.require("student_method", record.student_method)
    link.require("guard", record.guard)
    listed = version.tags.get("fourds.lineage_missing")
    if listed:
        link.missing.append(f"registered without: {listed}")
    return link


def mlflow_run_link(client, version, record: LineageRecord) -> Link:
    link = Link("MLflow run")
    run_id = link.require("run_id", record.mlflow_run_id)
    link.compare("MLflow run id", run_id, version.run_id, "the registry version")
    if run_id is None:
        return link
    run = _mlflow_run(client, run_id, link)
    if run is None:
        return link
    experiment = client.get_experiment(run.info.experiment_id)
    link.facts.update(run_name=run.info.run_name, status=run.info.status,
                      experiment=experiment.name if experiment else run.info.experiment_id,
                      started=_millis_to_iso(run.info.start_time))
    if run.info.status != "FINISHED":
        link.mismatches.append(f"MLflow run {run_id} has status {run.info.status}, not FINISHED")
    link.compare("ZenML run id", record.zenml_run_id, run.data.tags.get("fourds.zenml_run_id"), "the MLflow run")
    return link


@dataclass
class OrchestratorRun:
    """What the audit needs to know of the orchestrator's (ZenML's) record of a pipeline run."""

    name: str
    pipeline: str | None
    status: str
    """``completed`` when the run succeeded."""
    steps: dict[str, str]
    """Step name -> status (``completed``, ``cached``, ``failed``...), in the order the steps started."""


OrchestratorRunReader = Callable[[str], OrchestratorRun]
"""Reads a pipeline run by id; raises ``LookupError`` (its message says where it looked) when there is none.
The app passes one that reads the active ZenML store: the library itself imports no orchestrator."""


def zenml_run_link(record: LineageRecord, read_run: OrchestratorRunReader | None) -> Link:
    link = Link("ZenML run")
    run_id = link.require("run_id", record.zenml_run_id)
    if run_id is None:
        return link
    if read_run is None:
        link.missing.append(f"ZenML run {run_id} was not checked: no reader of the orchestrator's runs was given")
        return link
    try:
        run = read_run(run_id)
    except LookupError as exc:
        link.missing.append(str(exc))
        return link
    link.facts.update(run_name=run.name, pipeline=run.pipeline, status=run.status, steps=dict(run.steps))
    if run.status != "completed":
        link.mismatches.append(f"ZenML run {run.name} has status {run.status}, not completed")
    unfinished = [name for name, status in run.steps.items() if status not in ("completed", "cached")]
    if unfinished:
        link.mismatches.append(f"steps not completed: {', '.join(unfinished)}")
    if not run.steps:
        link.missing.append(f"ZenML run {run.name} has no steps")
    return link


def data_link(record: LineageRecord, workspace: Workspace) -> Link:
    """The recorded md5s, table hash and unlabelled-image count, re-derived from the data itself: pulled by md5
    from the recorded DVC remote (or, for versions registered before fourds pushed data, the workspace's cache)."""
    link = Link("data")
    domain = link.require("domain", record.domain)
    domain_md5 = link.require("domain_md5", record.data_domain_md5)
    data_md5 = link.require("data_md5", record.data_md5)
    link.require("table_sha256", record.table_sha256)
    _check_unlabelled_counts(link, record)
    _check_git_revision(link, record, workspace)
    if domain is None or data_md5 is None:
        return link
    if record.data_dvc_remote is None:
        link.notes.append("no DVC remote recorded (registered before fourds pushed data): checked in the workspace's cache")
        _check_workspace_cache(link, record, workspace)
        return link

    from fourds.data.versioning import DataVersionError, checkout_domain, directory_md5

    link.facts["dvc_remote"] = record.data_dvc_remote
    with tempfile.TemporaryDirectory(prefix="fourds-lineage-data-") as scratch:
        audit_workspace = Workspace(Path(scratch))
        try:
            folder = checkout_domain(audit_workspace, data_md5=data_md5, remote=record.data_dvc_remote, domain=domain)
        except DataVersionError as exc:
            link.missing.append(str(exc))
            return link
        link.compare("domain md5", domain_md5, directory_md5(audit_workspace, folder),
                     f"domains/{domain} pulled from the DVC remote")
        table = folder / "images.csv"
        if table.is_file():
            _check_cached_table(link, record, table)
        else:
            link.missing.append(f"domains/{domain}/images.csv is not in DVC version {data_md5}")
    current = workspace.domain_dir(domain)
    if current.is_dir() and domain_md5 is not None:
        now = directory_md5(workspace, current)
        if now != domain_md5:
            link.notes.append(f"{current} has changed since this run (DVC md5 now {now})")
    return link


def _check_git_revision(link: Link, record: LineageRecord, workspace: Workspace) -> None:
    """The revision of ``data.dvc``, when recorded, must be in the auditing checkout's git repository."""
    revision = record.data_git_revision
    if revision is None and record.data_dvc_remote is None:
        link.require("git_revision", revision)  # before data was pushed, the git revision was the version's anchor
        return
    link.facts["git_revision"] = revision
    if revision is None:
        link.notes.append("no git revision of data.dvc recorded (the ingest ran outside git, e.g. in its own pod): "
                          "the data version is identified by its DVC md5 and remote")
    elif not _in_git(workspace.root):
        link.notes.append(f"git revision {revision} not checked: {workspace.root} is not in a git repository")
    elif not _git_has_commit(workspace.root, revision):
        link.missing.append(f"git revision {revision} is not in the repository holding {workspace.root}")


def _check_workspace_cache(link: Link, record: LineageRecord, workspace: Workspace) -> None:
    from dvc.repo import Repo
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.tree import Tree

    domain, domain_md5, data_md5 = record.domain, record.data_domain_md5, record.data_md5
    if not (workspace.root / ".dvc").is_dir():
        link.missing.append(f"{workspace.root} has no DVC repository: the data cannot be checked")
        return
    with Repo(str(workspace.root)) as repo:
        odb = repo.cache.local
        try:
            tree = Tree.load(odb, HashInfo("md5", data_md5))
        except (FileNotFoundError, OSError, ValueError):
            link.missing.append(f"data folder version {data_md5} is not in the DVC cache {odb.path} (dvc pull?)")
            return
        link.facts["dvc_cache"] = odb.path
        domain_tree = tree.get_obj(odb, ("domains", domain))
        if domain_tree is None:
            link.mismatches.append(f"data folder version {data_md5} holds no domains/{domain}")
            return
        link.compare("domain md5", domain_md5, domain_tree.hash_info.value, f"domains/{domain} in DVC version {data_md5}")
        _, table_hash = tree.get(("domains", domain, "images.csv"), (None, None))
        if table_hash is None:
            link.missing.append(f"domains/{domain}/images.csv is not in DVC version {data_md5}")
            return
        cached_table = Path(odb.get(table_hash.value).path)
        if cached_table.is_file():
            _check_cached_table(link, record, cached_table)
        else:
            link.missing.append(f"domains/{domain}/images.csv ({table_hash.value}) is not in the DVC cache")


def _check_unlabelled_counts(link: Link, record: LineageRecord) -> None:
    """The counts of unlabelled images, when recorded: used <= in the domain.

    Versions registered before fourds counted unlabelled images carry neither tag; that is
    a note, not a missing fact (a version registered since without them lists them in
    ``fourds.lineage_missing``, which the registry link reports).
    """
    total, used = record.data_unlabelled_images, record.data_unlabelled_images_used
    link.facts.update(unlabelled_images=total, unlabelled_images_used=used)
    absent = [label for label, value in (("unlabelled_images", total), ("unlabelled_images_used", used))
              if value is None]
    if absent:
        link.notes.append(f"{' and '.join(absent)} not recorded (registered before fourds counted unlabelled images)")
    if total is not None and used is not None and used > total:
        link.mismatches.append(
            f"unlabelled images used: the lineage tags record {used}, more than the {total} unlabelled images "
            "they record in the domain"
        )


def _check_cached_table(link: Link, record: LineageRecord, cached_table: Path) -> None:
    """The table's hash and its count of unlabelled images, against the lineage tags."""
    from fourds.data.table import ImageTableError, read_image_table, unlabelled_rows

    link.compare("images.csv sha256", record.table_sha256, file_sha256(cached_table), "the DVC-versioned table")
    try:
        unlabelled = len(unlabelled_rows(read_image_table(cached_table)))
    except ImageTableError as exc:
        link.mismatches.append(f"the DVC-versioned images.csv cannot be read: {exc}")
        return
    link.compare("unlabelled images", record.data_unlabelled_images, unlabelled, "the DVC-versioned table")


def validation_link(record: LineageRecord) -> Link:
    """The Great Expectations result the run logged (an MLflow artifact; a local path for older versions)."""
    link = Link("validation (Great Expectations)")
    success = link.require("success", record.gx_success)
    uri = link.require("result", record.gx_result_uri)
    if success is False:
        link.mismatches.append("the data of this run failed validation, yet a model was registered")
    if uri is None:
        return link
    with tempfile.TemporaryDirectory(prefix="fourds-lineage-gx-") as scratch:
        if uri.startswith("runs:/"):
            import mlflow
            from mlflow.exceptions import MlflowException

            try:
                path = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=scratch))
            except (MlflowException, OSError) as exc:
                link.missing.append(f"validation result {uri} cannot be read from MLflow: {exc}")
                return link
        else:
            path = Path(uri.removeprefix("file://"))
            if not path.is_file():
                link.missing.append(f"validation result {path} does not exist")
                return link
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            link.mismatches.append(f"validation result {uri} is not valid JSON: {exc}")
            return link
    link.compare("validation success", success, result.get("success"), uri)
    link.facts["statistics"] = result.get("statistics", {})
    return link


def teacher_link(client, record: LineageRecord) -> Link:
    from mlflow.exceptions import MlflowException

    link = Link("teacher")
    name = link.require("model", record.teacher_model_name)
    version = link.require("version", record.teacher_version)
    data_md5 = link.require("training_data_md5", record.teacher_data_md5)
    if name is None or version is None:
        return link
    if version.startswith("sha256:"):
        link.notes.append("an imported weights file, not a registered version: its training data is not in lineage")
        return link
    try:
        teacher = client.get_model_version(name, version)
    except MlflowException:
        link.missing.append(f"teacher {name}/{version} is not in the registry")
        return link
    registered_md5 = teacher_data_md5(teacher.tags)
    if registered_md5 is None:
        link.missing.append(f"teacher {name}/{version} records no training-data md5")
    link.compare("teacher training-data md5", data_md5, registered_md5, f"teacher {name}/{version}")
    return link


def code_link(client, record: LineageRecord) -> Link:
    link = Link("code and configuration")
    commit = link.require("commit", record.code_commit)
    config_hash = link.require("config_hash", record.config_hash)
    if commit == "unknown":
        link.missing.append("the code commit was unknown at registration (not run from a git checkout)")
    elif commit is not None and commit.endswith("-dirty"):
        link.notes.append("the code had uncommitted changes when this model was trained")
    if record.mlflow_run_id is None or config_hash is None:
        return link
    from fourds.tracking.run_log import CONFIG_ARTIFACT

    with tempfile.TemporaryDirectory(prefix="fourds-lineage-") as scratch:
        try:
            config_file = client.download_artifacts(record.mlflow_run_id, CONFIG_ARTIFACT, scratch)
        except Exception as exc:  # MLflow raises several types for a missing artifact
            link.missing.append(f"{CONFIG_ARTIFACT} of MLflow run {record.mlflow_run_id}: {exc}")
            return link
        import yaml

        from fourds.hashing import canonical_json_sha256

        # Hashed as logged, not re-read through today's RunConfig: a field added since (with its default)
        # would change the hash of every older run's configuration.
        logged = canonical_json_sha256(yaml.safe_load(Path(config_file).read_text()))
    link.facts["config_artifact"] = f"runs:/{record.mlflow_run_id}/{CONFIG_ARTIFACT}"
    link.compare("config sha256", config_hash, logged, "the run's logged configuration re-hashed")
    return link


def onnx_link(client, version, record: LineageRecord) -> Link:
    link = Link("ONNX")
    recorded = link.require("sha256", record.onnx_sha256)
    with tempfile.TemporaryDirectory(prefix="fourds-lineage-") as scratch:
        try:
            files = stored_onnx_files(client, version, Path(scratch))
        except Exception as exc:  # the registry's artifact store is unreachable or empty
            link.missing.append(f"the stored ONNX file of {version.name}/{version.version} cannot be read: {exc}")
            return link
        if not files:
            link.missing.append(f"no ONNX file is stored with {version.name}/{version.version} ({version.source})")
            return link
        if len(files) > 1:
            link.mismatches.append(f"several ONNX files are stored: {', '.join(name for name, _ in files)}")
            return link
        stored_name, local_copy = files[0]
        link.facts["file"] = stored_name
        actual = file_sha256(local_copy)
    link.facts["rehashed_sha256"] = actual
    if recorded is not None and actual != recorded:
        link.mismatches.append(f"ONNX file {stored_name} hashes to {actual}, but the lineage tags record {recorded}")
    return link


# --- where facts are stored (kept in one place so a storage change is a one-line change) -------


def stored_onnx_files(client, version, scratch: Path) -> list[tuple[str, Path]]:
    """Every ``.onnx`` file stored with the registered version: (where it is stored, a local copy)."""
    from mlflow.artifacts import download_artifacts

    local_root = Path(download_artifacts(artifact_uri=version.source, dst_path=str(scratch)))
    copies = sorted(local_root.rglob("*.onnx")) if local_root.is_dir() else [local_root]
    return [(f"{version.source.rstrip('/')}/{copy.relative_to(local_root)}" if local_root.is_dir() else version.source,
             copy) for copy in copies if copy.suffix == ".onnx"]


def teacher_data_md5(tags: dict[str, str]) -> str | None:
    """The md5 of the data a registered teacher was trained on, from its version tags."""
    from fourds.registry.versions import DATA_MD5_TAG

    return tags.get(DATA_MD5_TAG)


# --- the human-readable report ----------------------------------------------------------------


def format_audit(audit: LineageAudit) -> str:
    """The chain as text: one block per link, its status first; problems and notes indented under it."""
    lines = [f"lineage of {audit.model_name} version {audit.version} ({audit.reference})"]
    for link in audit.links:
        lines.append(f"[{link.status.upper():8}] {link.name}")
        for label, value in link.facts.items():
            lines.append(f"    {label}: {_format_fact(value)}")
        lines += [f"    MISSING: {problem}" for problem in link.missing]
        lines += [f"    MISMATCH: {problem}" for problem in link.mismatches]
        lines += [f"    note: {note}" for note in link.notes]
    broken = [link.name for link in audit.links if link.status != OK]
    lines.append("lineage complete: every link checked and consistent" if not broken
                 else f"lineage INCOMPLETE: {len(broken)} link(s) missing or inconsistent: {', '.join(broken)}")
    return "\n".join(lines)


def _format_fact(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key}={item}" for key, item in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "-"
    return "-" if value is None else str(value)


# --- small helpers -------------------------------------------------------------------------------


def _mlflow_run(client, run_id: str, link: Link):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        link.missing.append(f"MLflow run {run_id} does not exist")
        return None


def _in_git(where: Path) -> bool:
    try:
        subprocess.run(["git", "-C", str(where), "rev-parse", "--git-dir"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return False
    return True


def _git_has_commit(where: Path, revision: str) -> bool:
    try:
        subprocess.run(["git", "-C", str(where), "cat-file", "-e", f"{revision}^{{commit}}"],
                       check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return False
    return True


def _millis_to_iso(millis: int | None) -> str | None:
    if millis is None:
        return None
    return datetime.fromtimestamp(millis / 1000, tz=UTC).isoformat(timespec="seconds")
