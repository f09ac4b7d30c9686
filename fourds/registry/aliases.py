"""Moving a registered model's aliases (``champion``, ``challenger``) with an audit trail.

MLflow keeps only where an alias points now. Every move made through fourds also
records who moved it, when and why: as tags on the version it now points at
(``fourds.alias.<alias>.set_by|set_at|reason``) and as an append-only history on the
registered model, one tag per move (``fourds.alias_history.<alias>.<UTC time>-<id>``,
JSON). ``rollback`` uses that history to give the alias back to the version that held
it before.

Two moves at the same moment (two promotions, a promotion and a rollback) must not lose
an entry, or rollback would later refuse with a false "moved outside fourds":

* each move writes its own history tag, so no move rewrites what another wrote (this
  holds against an MLflow server too);
* with a local registry (SQLite, files), a move holds a file lock beside the store from
  reading the alias to writing its entry, so the entries are in the order the alias was
  really set. Against a server there is no shared lock: two moves in the same instant
  are both recorded, in the order of their timestamps.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from fourds.operations.locks import LockHeld, exclusive_lock
from fourds.registry.errors import RegistryError

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG_PREFIX = "fourds.alias_history."
"""``<prefix><alias>.<UTC time>-<id>``: one move each. ``<prefix><alias>`` alone: the JSON list of moves that
earlier fourds versions kept in one tag (still read, first, never written)."""
_MAX_HISTORY_ENTRIES = 200  # older entry tags are deleted; the registered model stays small
_ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9_\-]+$")
_LOCK_SUFFIX = ".aliases.lock"
_LOCK_WAIT_SECONDS = 120.0  # a move takes well under a second; this only guards against a stuck holder


class AliasMovesLocked(LockHeld):
    """Another process has been moving an alias of the same local registry for too long."""


def current_user() -> str:
    """The login name to record for moves made by this process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def alias_version(model_name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when it is not set (the model must exist)."""
    registered = get_registered_model(model_name)
    version = registered.aliases.get(alias)
    return str(version) if version is not None else None


def alias_history(model_name: str, alias: str = CHAMPION) -> list[dict]:
    """Past moves of ``alias`` made through fourds, oldest first."""
    tags = get_registered_model(model_name).tags
    legacy = tags.get(HISTORY_TAG_PREFIX + alias)
    return (json.loads(legacy) if legacy else []) + [json.loads(tags[key]) for key in _entry_keys(tags, alias)]


def move_alias(model_name: str, alias: str, version: str | int, *, who: str, reason: str, action: str = "move") -> str | None:
    """Point ``alias`` at ``version``, recording who, when and why. Returns the version it pointed at before.

    This is the manual ``promote`` (it skips the promotion gates on purpose); automatic
    moves (registration, the promotion policy) go through here too, so the history is complete.
    """
    version = str(version)
    _check_alias_name(alias)
    who, reason = who.strip(), reason.strip()
    if not who or not reason:
        raise ValueError(f"moving {model_name}@{alias} needs a non-empty who and reason (they go into the audit trail)")
    with _alias_moves_lock():
        return _move_alias_holding_the_lock(model_name, alias, version, who=who, reason=reason, action=action)


def _move_alias_holding_the_lock(model_name: str, alias: str, version: str, *, who: str, reason: str,
                                 action: str) -> str | None:
    get_model_version(model_name, version)
    previous = alias_version(model_name, alias)
    client = MlflowClient()
    client.set_registered_model_alias(model_name, alias, version)

    now = datetime.now(UTC)
    moved_at = now.isoformat(timespec="seconds")
    for field, value in (("set_by", who), ("set_at", moved_at), ("reason", reason)):
        client.set_model_version_tag(model_name, version, f"fourds.alias.{alias}.{field}", value)
    entry = {"version": version, "previous": previous, "who": who, "reason": reason, "at": moved_at, "action": action}
    entry_key = f"{HISTORY_TAG_PREFIX}{alias}.{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{uuid.uuid4().hex[:8]}"
    client.set_registered_model_tag(model_name, entry_key, json.dumps(entry))
    _forget_oldest_entries(client, model_name, alias)
    return previous


def rollback(model_name: str, *, who: str, reason: str, alias: str = CHAMPION) -> str:
    """Give ``alias`` back to the version that held it before the current one; returns that version.

    Repeated rollbacks walk further back (each undoes one earlier move).
    """
    _check_alias_name(alias)
    who, reason = who.strip(), reason.strip()
    if not who or not reason:
        raise ValueError(f"rolling back {model_name}@{alias} needs a non-empty who and reason (the audit trail)")
    with _alias_moves_lock():  # no other move between reading the history and this move
        holders = _holders(alias_history(model_name, alias))
        current = alias_version(model_name, alias)
        if current is None:
            raise RegistryError(f"{model_name} has no {alias!r} alias: there is nothing to roll back")
        if not holders or holders[-1] != current:
            raise RegistryError(
                f"{model_name}@{alias} points at version {current}, but fourds's history of that alias ends at "
                f"{holders[-1] if holders else 'nothing'} (it was moved outside fourds); set it explicitly with promote"
            )
        if len(holders) < 2:
            raise RegistryError(
                f"{model_name}@{alias} has had no earlier version (history: {', '.join(holders)}): "
                "nothing to roll back to"
            )
        target = holders[-2]
        _move_alias_holding_the_lock(model_name, alias, target, who=who, reason=reason, action="rollback")
    return target


def _entry_keys(tags: dict[str, str], alias: str) -> list[str]:
    """The history tags of ``alias``, oldest first (their names sort by time)."""
    prefix = f"{HISTORY_TAG_PREFIX}{alias}."
    return sorted(key for key in tags if key.startswith(prefix))


def _forget_oldest_entries(client: MlflowClient, model_name: str, alias: str) -> None:
    keys = _entry_keys(client.get_registered_model(model_name).tags, alias)
    for key in keys[:-_MAX_HISTORY_ENTRIES]:
        with contextlib.suppress(MlflowException):  # another process deleted it first
            client.delete_registered_model_tag(model_name, key)


@contextlib.contextmanager
def _alias_moves_lock() -> Iterator[None]:
    """Serialise alias moves on a local registry (a file lock beside its store); nothing for a server."""
    lock_file = _local_registry_lock_file(mlflow.get_registry_uri())
    if lock_file is None:
        yield
        return

    def refused(holder: str) -> AliasMovesLocked:
        return AliasMovesLocked(f"another process has been moving an alias in this registry for over "
                                f"{_LOCK_WAIT_SECONDS:.0f} s ({holder}); lock file {lock_file}",
                                lock_path=lock_file, holder=holder)

    with exclusive_lock(lock_file, refused=refused, wait_seconds=_LOCK_WAIT_SECONDS):
        yield


def _local_registry_lock_file(uri: str) -> Path | None:
    """``<store>.aliases.lock`` beside a SQLite file or inside a file store; None for a server or memory."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        database = unquote(parsed.path)  # sqlite:////abs/db -> //abs/db; sqlite:///rel.db -> /rel.db
        database = database[1:] if database.startswith("/") else database
        if not database or database == ":memory:":
            return None
        database_path = Path(database)
        return database_path.with_name(database_path.name + _LOCK_SUFFIX)
    if parsed.scheme in ("", "file"):  # a file store is a folder; "databricks" and the like are not
        store = Path(unquote(parsed.path) if parsed.scheme else uri)
        return store / _LOCK_SUFFIX.lstrip(".") if store.is_dir() else None
    return None


def _holders(history: list[dict]) -> list[str]:
    """Versions that held the alias, as a stack: a move pushes, a rollback pops."""
    stack: list[str] = []
    for entry in history:
        if entry.get("action") == "rollback":
            if stack:
                stack.pop()
        elif not stack or stack[-1] != entry["version"]:
            stack.append(entry["version"])
    return stack


def get_registered_model(model_name: str):
    """The registered model, or a RegistryError naming the models that do exist."""
    client = MlflowClient()
    try:
        return client.get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        known = sorted(model.name for model in client.search_registered_models(max_results=1000))
        raise RegistryError(
            f"no registered model named {model_name!r} in the MLflow registry"
            + (f"; registered models: {', '.join(known)}" if known else " (the registry is empty)")
        ) from exc


def get_model_version(model_name: str, version: str | int):
    """One version of a registered model, or a RegistryError listing the versions that exist."""
    get_registered_model(model_name)
    client = MlflowClient()
    try:
        return client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{model_name}'"))
        raise RegistryError(
            f"{model_name} has no version {version}; its versions: {', '.join(map(str, versions)) or 'none'}"
        ) from exc


def _check_alias_name(alias: str) -> None:
    if not _ALIAS_PATTERN.match(alias) or alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise ValueError(
            f"invalid alias {alias!r}: use letters, digits, '_' and '-', and not 'latest' or 'v<number>'"
        )
