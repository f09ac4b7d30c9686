"""Moving a registered model's aliases (``champion``, ``challenger``) with an audit trail.

MLflow keeps only where an alias points now. Every move made through fourds also
records who moved it, when and why: as tags on the version it now points at
(``fourds.alias.<alias>.set_by|set_at|reason``) and as an append-only history on the
registered model (``fourds.alias_history.<alias>``, JSON). ``rollback`` uses that
history to give the alias back to the version that held it before.
"""

from __future__ import annotations

import getpass
import json
import re
from datetime import UTC, datetime

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from fourds.registry.errors import RegistryError

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG_PREFIX = "fourds.alias_history."
_MAX_HISTORY_ENTRIES = 200  # keeps the tag far below MLflow's 100 000-character limit
_ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9_\-]+$")


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
    raw = get_registered_model(model_name).tags.get(HISTORY_TAG_PREFIX + alias)
    return json.loads(raw) if raw else []


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
    get_model_version(model_name, version)
    previous = alias_version(model_name, alias)
    client = MlflowClient()
    client.set_registered_model_alias(model_name, alias, version)

    moved_at = datetime.now(UTC).isoformat(timespec="seconds")
    for field, value in (("set_by", who), ("set_at", moved_at), ("reason", reason)):
        client.set_model_version_tag(model_name, version, f"fourds.alias.{alias}.{field}", value)
    entry = {"version": version, "previous": previous, "who": who, "reason": reason, "at": moved_at, "action": action}
    history = [*alias_history(model_name, alias), entry][-_MAX_HISTORY_ENTRIES:]
    client.set_registered_model_tag(model_name, HISTORY_TAG_PREFIX + alias, json.dumps(history))
    return previous


def rollback(model_name: str, *, who: str, reason: str, alias: str = CHAMPION) -> str:
    """Give ``alias`` back to the version that held it before the current one; returns that version.

    Repeated rollbacks walk further back (each undoes one earlier move).
    """
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
            f"{model_name}@{alias} has had no earlier version (history: {', '.join(holders)}): nothing to roll back to"
        )
    target = holders[-2]
    move_alias(model_name, alias, target, who=who, reason=reason, action="rollback")
    return target


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
