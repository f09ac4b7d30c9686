"""The workspace's data folder under DVC: initialise, ``dvc add data``, and the md5s used for lineage.

Everything goes through DVC's Python API (``dvc.repo.Repo``), with a local cache only
(no remote) and analytics off. ``domain_md5`` is DVC's own directory hash of one
domain folder: the value DVC would record if that folder were added on its own.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from fourds.workspace import Workspace

# Staging folders of an ingest in progress live beside the domains; DVC must not hash them.
STAGING_PREFIX = ".staging-"
_DVCIGNORE_PATTERN = f"/data/domains/{STAGING_PREFIX}*"


class DataVersionError(RuntimeError):
    """DVC could not track the data folder, or its state is inconsistent."""


@dataclass(frozen=True)
class DataVersion:
    """Lineage facts of one domain as it is now in the workspace."""

    domain_md5: str
    """DVC directory md5 of ``data/domains/<name>``: changes iff the domain's content changes."""
    data_md5: str
    """The md5 recorded in ``data.dvc`` for the whole data folder."""
    git_revision: str | None
    """HEAD commit of the git repository holding the workspace; None outside git (or before a first commit)."""
    data_dvc_dirty: bool | None
    """True when ``data.dvc`` differs from (or is missing in) HEAD; None outside git."""


def _open_repo(workspace: Workspace):
    """The workspace's DVC repo, initialised on first use (in git when possible, else without SCM)."""
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    from dvc.exceptions import InitError
    from dvc.repo import Repo

    _point_dvc_logs_at_current_streams()

    root = workspace.root
    if not (root / ".dvc").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        try:
            # subdir=True: the workspace may be a sub-folder of a git repository.
            _quiet_init(root, subdir=True)
        except InitError:
            # Not in git, or in a git-ignored folder: DVC without SCM.
            _quiet_init(root, no_scm=True)
        repo = Repo(root)
        with repo.config.edit() as config:
            config["core"]["analytics"] = False
        repo.close()
    # Also for a DVC project set up before fourds: the previous version of a domain sits in
    # a staging folder while ``dvc add`` runs, and must not be hashed.
    _ignore_staging_folders(root)
    return Repo(root)


def _quiet_init(root: Path, **options) -> None:
    """``dvc init`` without its banner, which DVC logs at INFO to stdout (it would corrupt ``fourds lineage --json``)."""
    from dvc.repo import Repo

    init_logger = logging.getLogger("dvc.repo.init")
    level = init_logger.level
    init_logger.setLevel(logging.WARNING)
    try:
        Repo.init(root, **options).close()
    finally:
        init_logger.setLevel(level)


def _point_dvc_logs_at_current_streams() -> None:
    """DVC binds its log handlers to sys.stdout/stderr when it is first imported.

    ZenML steps and pytest swap those streams; once the stream DVC kept is closed, DVC's
    next log line raises. Rebinding to the streams of the moment avoids that.
    """
    from dvc.logger import LoggerHandler

    for name in ("dvc", "dvc_objects", "dvc_data"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, LoggerHandler):
                # Plain assignment: setStream() would first flush the old, possibly closed, stream.
                handler.stream = sys.stderr if handler.level >= logging.WARNING else sys.stdout


def _ignore_staging_folders(root: Path) -> None:
    dvcignore = root / ".dvcignore"
    text = dvcignore.read_text() if dvcignore.is_file() else ""
    if _DVCIGNORE_PATTERN not in text.splitlines():
        separator = "" if not text or text.endswith("\n") else "\n"
        dvcignore.write_text(f"{text}{separator}# fourds: an ingest in progress\n{_DVCIGNORE_PATTERN}\n")


def track_data_folder(workspace: Workspace) -> str:
    """``dvc add data`` in the workspace (initialising DVC if needed); returns the md5 in ``data.dvc``."""
    from dvc.exceptions import DvcException

    try:
        with _open_repo(workspace) as repo:
            repo.add(str(workspace.data_dir))
    except DvcException as exc:
        raise DataVersionError(f"dvc add {workspace.data_dir} failed: {exc}") from exc
    return recorded_data_md5(workspace)


def recorded_data_md5(workspace: Workspace) -> str:
    """The md5 of the data folder as recorded in ``<workspace>/data.dvc``."""
    dvc_file = workspace.root / "data.dvc"
    if not dvc_file.is_file():
        raise DataVersionError(f"{dvc_file} not found: the data folder is not tracked yet (ingest a domain first)")
    try:
        outs = yaml.safe_load(dvc_file.read_text())["outs"]
        return str(outs[0]["md5"])
    except (yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
        raise DataVersionError(f"{dvc_file}: no md5 recorded under outs[0]") from exc


def directory_md5(workspace: Workspace, folder: Path) -> str:
    """DVC's md5 of ``folder`` (a ``....dir`` hash over file names and contents), computed as ``dvc add`` does."""
    from dvc_data.hashfile.build import build

    if not folder.is_dir():
        raise DataVersionError(f"{folder}: not a folder")
    with _open_repo(workspace) as repo:
        _, _, tree = build(repo.cache.local, str(folder.resolve()), repo.fs, "md5", ignore=repo.dvcignore, dry_run=True)
    return tree.hash_info.value


def git_state(workspace: Workspace) -> tuple[str | None, bool | None]:
    """(HEAD revision, whether ``data.dvc`` differs from HEAD) of the git repo holding the workspace."""
    from scmrepo.exceptions import SCMError
    from scmrepo.git import Git

    try:
        scm = Git(str(workspace.root), search_parent_directories=True)
    except SCMError:
        return None, None
    dvc_file = workspace.root / "data.dvc"
    current = dvc_file.read_bytes() if dvc_file.is_file() else None
    with scm:
        try:
            revision = scm.get_rev()
        except SCMError:  # a repository without commits yet
            return None, None
        relative = Path(os.path.relpath(dvc_file, scm.root_dir)).as_posix()
        try:
            committed = scm.get_fs(revision).cat_file(relative)
        except FileNotFoundError:
            committed = None
    return revision, committed != current


def data_version(workspace: Workspace, name: str) -> DataVersion:
    """Lineage facts of an ingested domain as it is in the workspace now."""
    domain_dir = workspace.domain_dir(name)
    if not domain_dir.is_dir():
        raise DataVersionError(f"domain {name!r} not found in {workspace.domains_dir}")
    revision, dirty = git_state(workspace)
    return DataVersion(
        domain_md5=directory_md5(workspace, domain_dir),
        data_md5=recorded_data_md5(workspace),
        git_revision=revision,
        data_dvc_dirty=dirty,
    )


REMOTE_NAME = "fourds"
DATA_VERSIONS_FOLDER = "data-versions"


def default_remote(workspace: Workspace) -> str:
    """Where data versions are pushed when ``data.dvc_remote`` is not set: a folder in the workspace."""
    return str(workspace.state_dir / "dvc-remote")


def push_data_folder(workspace: Workspace, remote: str) -> None:
    """Push the tracked data folder's current version (``data.dvc``) to the DVC remote ``remote``."""
    from dvc.exceptions import DvcException

    try:
        with _open_repo(workspace) as repo:
            _use_remote(repo, remote)
            repo.push(targets=[str(workspace.root / "data.dvc")], remote=REMOTE_NAME)
    except DvcException as exc:
        raise DataVersionError(f"dvc push of {workspace.data_dir} to {remote} failed: {exc}") from exc


def checkout_domain(workspace: Workspace, *, data_md5: str, remote: str, domain: str) -> Path:
    """The folder of ``domain`` exactly as data version ``data_md5`` holds it, pulled from ``remote``.

    Each data version gets its own DVC project under ``<workspace>/.fourds/data-versions/``
    (sharing the workspace's DVC cache), so a later ingest can never change what a run
    reads, and a machine that never saw the ingest (a step in its own pod) gets the same
    files. Only ``data/domains/<domain>`` is pulled. Raises :class:`DataVersionError` when the
    remote lacks the version or one of its files.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    root = workspace.state_dir / DATA_VERSIONS_FOLDER / data_md5.removesuffix(".dir")
    target = root / "data" / "domains" / domain
    done = root / f".pulled-{domain}"
    if done.is_file():
        return target
    # The workspace's own DVC project first: its cache is the one shared (a bare .dvc/cache folder at the
    # workspace root would later read as a broken project).
    _open_repo(workspace).close()
    root.mkdir(parents=True, exist_ok=True)
    if not (root / ".dvc").is_dir():
        _quiet_init(root, no_scm=True)
    (root / "data.dvc").write_text(yaml.safe_dump({"outs": [{"md5": data_md5, "hash": "md5", "path": "data"}]}))
    with Repo(str(root)) as repo:
        with repo.config.edit() as config:
            config["core"]["analytics"] = False
            config["cache"]["dir"] = str(workspace.root / ".dvc" / "cache")
            # Links into the shared cache, not copies: a checkout per data version costs inodes, not the
            # images again (DVC makes linked files read-only; runs only read them).
            config["cache"]["type"] = "reflink,hardlink,symlink,copy"
        _use_remote(repo, remote)
    try:
        with Repo(str(root)) as repo:  # opened again: a Repo reads its cache settings when it opens
            repo.pull(targets=[str(target)], remote=REMOTE_NAME)
    except DvcException as exc:
        raise DataVersionError(
            f"cannot get domain {domain!r} of data version {data_md5} from the DVC remote {remote}: {exc}"
        ) from exc
    if not target.is_dir():
        raise DataVersionError(f"data version {data_md5} in the DVC remote {remote} holds no domains/{domain}")
    done.write_text(remote + "\n")
    return target


def _use_remote(repo, remote: str) -> None:
    """Make ``remote`` the project's default remote; an S3 remote honours ``$AWS_ENDPOINT_URL`` (e.g. MinIO)."""
    with repo.config.edit() as config:
        config["core"]["remote"] = REMOTE_NAME
        settings = {"url": remote}
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        if remote.startswith("s3://") and endpoint:
            settings["endpointurl"] = endpoint
        config["remote"][REMOTE_NAME] = settings
