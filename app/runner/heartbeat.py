"""Who this worker is, that only one process is it, and its ``worker_heartbeats`` row.

* **Worker id** ``<hostname>:<name>``: stable across restarts, so a restarted
  worker finds the runs it owned (``app/runner/recovery.py``).
* **One process per id**: an exclusive ``flock`` on a file next to the database.
  The lock dies with the process, so a crash never leaves it stale. Without it a
  second ``missionctl worker`` with the same name would "recover" the first one's
  live runs at start-up. (SQLite in WAL mode needs every process on one host, so a
  file next to the database is seen by all of them.)
* **Heartbeat row**: ``state`` is ``{"circuits": {profile: {...}}, "running": [ids],
  "sandbox": {...}}``; the API's pre-flight refuses tasks of a profile whose circuit
  is ``open``, and ``/api/health`` shows the rows. ``sandbox`` is the agents'
  filesystem sandbox as the worker probed it at start (``SandboxReport.as_dict``:
  ``status`` enforced / incomplete / unconfined / refused / off, the Landlock ABI,
  each check); ``app/care/sandbox.py`` turns it into ``runner_sandbox`` and a
  repair.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
from pathlib import Path
from typing import Any

from app.core.clock import now_iso
from app.core.database import Database

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_HOSTNAME = 200


class WorkerIdentityError(RuntimeError):
    """The worker name is invalid or another process already runs this worker id."""


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise WorkerIdentityError(
            "worker name must be 1-64 characters of letters, digits, '.', '_' or '-'"
        )
    return name


def hostname() -> str:
    return (socket.gethostname() or "localhost")[:MAX_HOSTNAME]


def worker_id(name: str) -> str:
    return f"{hostname()}:{check_name(name)}"


class WorkerLock:
    """Exclusive lock of one worker id (released when the process ends)."""

    def __init__(self, database_path: Path, name: str) -> None:
        directory = database_path.absolute().parent
        self.path = directory / f".{database_path.name}.worker-{check_name(name)}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WorkerIdentityError(
                f"another worker process with this name is running (lock {self.path})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


async def write_heartbeat(
    db: Database, worker: str, *, started_at: str, state: dict[str, Any]
) -> None:
    """Insert or refresh this worker's row (one small write)."""
    text = json.dumps(state, separators=(",", ":"), sort_keys=True)
    async with db.write() as conn:
        await conn.execute(
            "INSERT INTO worker_heartbeats (worker_id, pid, hostname, started_at, seen_at, state)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (worker_id) DO UPDATE SET"
            " pid = excluded.pid, hostname = excluded.hostname, started_at = excluded.started_at,"
            " seen_at = excluded.seen_at, state = excluded.state",
            (worker, os.getpid(), hostname(), started_at, now_iso(), text),
        )
