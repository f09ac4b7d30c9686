"""Exclusive locks on files, in one place: ``fourds watch``, a pipeline run of a domain, an alias move.

A lock is an ``flock`` on a small file that also records its holder (pid, host, start
time, command line), so a process that is refused can say who is in the way. The
kernel releases an ``flock`` when its holder exits, even when it is killed, so a file
left behind by a dead process never blocks anyone: the next process takes the lock
over and says so (the record it finds is the dead holder's). ``flock`` is not reliable
on every network file system: keep the workspace's ``.fourds`` on a local disk when
several machines share it.

Locks are never taken in a cycle: ``watch`` holds its lock while each domain's run takes
that domain's lock, and an alias move takes the registry's lock inside a run; none of
them waits for a lock held by the one around it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fourds.workspace import Workspace

_log = logging.getLogger(__name__)
_POLL_SECONDS = 0.05
_MAX_COMMAND_CHARS = 300


class LockHeld(RuntimeError):
    """Another process holds a lock this one needs; the message names the lock file and the holder."""

    def __init__(self, message: str, *, lock_path: Path, holder: str):
        self.lock_path = lock_path
        self.holder = holder
        super().__init__(message)


class DomainLocked(LockHeld):
    """Another pipeline run of the same domain is in progress in this workspace."""

    def __init__(self, domain: str, lock_path: Path, holder: str):
        self.domain = domain
        super().__init__(
            f"domain {domain!r} is in use by another fourds run ({holder}); lock file {lock_path}. "
            "Nothing was done: run again once that run has finished",
            lock_path=lock_path,
            holder=holder,
        )


@dataclass(frozen=True)
class LockHolder:
    """What a lock file says about the process that holds (or held) it."""

    pid: int | None = None
    host: str | None = None
    since: str | None = None
    command: str | None = None
    text: str = ""
    """The file's content as read (a record written by another version is shown as it is)."""

    @classmethod
    def parse(cls, text: str) -> LockHolder | None:
        text = text.strip()
        if not text:
            return None
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            return cls(text=text)
        if not isinstance(record, dict):
            return cls(text=text)
        pid = record.get("pid")
        return cls(pid=pid if isinstance(pid, int) else None, host=record.get("host"), since=record.get("since"),
                   command=record.get("command"), text=text)

    def describe(self) -> str:
        if self.pid is None:
            return self.text
        described = f"pid {self.pid} on {self.host or 'an unknown host'} since {self.since or 'an unknown time'}"
        return f"{described}, command: {self.command}" if self.command else described

    def is_dead_process_on_this_host(self) -> bool:
        if self.pid is None or self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False


def this_process(command: str | None = None) -> str:
    """The record a lock file holds while this process has it (one JSON line)."""
    command = command or shlex.join(sys.argv)
    if len(command) > _MAX_COMMAND_CHARS:
        command = command[:_MAX_COMMAND_CHARS] + "..."
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "since": datetime.now(UTC).isoformat(timespec="seconds"), "command": command})


@contextmanager
def exclusive_lock(
    path: Path,
    *,
    refused: Callable[[str], LockHeld],
    wait_seconds: float = 0.0,
    on_takeover: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold an ``flock`` on ``path`` for the block; raise ``refused(holder)`` when another process has it.

    ``wait_seconds``: how long to wait for the holder to finish first (0: refuse at once).
    ``on_takeover`` is told (default: a logged warning) when the file still records a holder
    that is gone, i.e. one that was killed before it could clear its record.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held open for the whole block
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = LockHolder.parse(handle.read())
                    raise refused(holder.describe() if holder else "holder unknown: it is just starting") from None
                time.sleep(_POLL_SECONDS)
        handle.seek(0)
        previous = LockHolder.parse(handle.read())
        if previous is not None:
            dead = previous.is_dead_process_on_this_host()
            gone = "which is no longer running" if dead else "which no longer holds it"
            (on_takeover or _log.warning)(f"took over the lock {path} left by {previous.describe()}, {gone}")
        handle.seek(0)
        handle.truncate()
        handle.write(this_process() + "\n")
        handle.flush()
        try:
            yield path
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


@contextmanager
def domain_lock(
    workspace: Workspace, domain: str, *, on_takeover: Callable[[str], None] | None = None
) -> Iterator[Path]:
    """Hold ``domain``'s lock in ``workspace`` for a whole pipeline run (ingest to promotion), or raise
    :class:`DomainLocked` at once: two runs of one domain would ingest over each other's data."""
    path = workspace.domain_lock_file(domain)
    with exclusive_lock(path, refused=lambda holder: DomainLocked(domain, path, holder), on_takeover=on_takeover):
        yield path


DATA_LOCK_WAIT_SECONDS = 600.0
"""How long an ingest waits for another ingest of the workspace (any domain) to finish."""


@contextmanager
def data_folder_lock(workspace: Workspace) -> Iterator[Path]:
    """Hold the workspace's data folder while one ingest adds and pushes it (``data.dvc`` is one file for every
    domain): ingests of different domains take turns, waiting up to :data:`DATA_LOCK_WAIT_SECONDS`."""
    path = workspace.locks_dir / "data.lock"

    def refused(holder: str) -> LockHeld:
        return LockHeld(f"the data folder of {workspace.root} is still being ingested by {holder} after "
                        f"{DATA_LOCK_WAIT_SECONDS:.0f} s (lock {path})", lock_path=path, holder=holder)

    with exclusive_lock(path, refused=refused, wait_seconds=DATA_LOCK_WAIT_SECONDS):
        yield path
