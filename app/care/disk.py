"""The disk guard: how much room is left where the database and the state live.

``DiskGuard.low()`` is true when the free space (available to the service's
user: ``f_bavail``) of the state file system, or of the database's file system
when that is another one, is below the smaller of ``disk_reserve_percent`` of
its size and ``disk_reserve_mb``. The answer is cached for
``disk_check_cache_s`` seconds (monotonic), so a burst of requests costs one
``statvfs`` call.

Refusing user writes while a reserve is still free keeps the database able to
take the small writes that must not fail: logins, audit records, the
notification that says the disk is full, the worker's heartbeat.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.core.settings import Settings

MIB = 1024 * 1024
_FULL_MESSAGES = ("database or disk is full", "no space left on device")


@dataclass(frozen=True)
class DiskState:
    path: str
    free_bytes: int
    total_bytes: int
    reserve_bytes: int

    @property
    def low(self) -> bool:
        return self.free_bytes < self.reserve_bytes

    @property
    def free_percent(self) -> float:
        return 100.0 * self.free_bytes / self.total_bytes if self.total_bytes else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "free_bytes": self.free_bytes,
            "total_bytes": self.total_bytes,
            "reserve_bytes": self.reserve_bytes,
            "low": self.low,
        }


def reserve_bytes(total: int, percent: float, mb: int) -> int:
    """The smaller of ``percent`` of ``total`` and ``mb`` MiB."""
    return int(min(total * percent / 100.0, mb * MIB))


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (the state dir may not exist yet)."""
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def watched_paths(settings: Settings) -> list[Path]:
    """The state directory and the database's directory, one per file system."""
    seen: set[int] = set()
    paths: list[Path] = []
    for candidate in (settings.state_dir, settings.database_path.absolute().parent):
        path = _existing(candidate)
        try:
            device = path.stat().st_dev
        except OSError:
            continue
        if device not in seen:
            seen.add(device)
            paths.append(path)
    return paths


def measure(path: Path, percent: float, mb: int) -> DiskState:
    info = os.statvfs(path)
    total = info.f_blocks * info.f_frsize
    free = info.f_bavail * info.f_frsize
    return DiskState(str(path), free, total, reserve_bytes(total, percent, mb))


class DiskGuard:
    """Cached answer to "is the state file system nearly full?"."""

    def __init__(
        self,
        settings: Settings,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: tuple[float, list[DiskState]] | None = None

    def states(self) -> list[DiskState]:
        ttl = self.settings.disk_check_cache_s
        with self._lock:
            if self._cached is not None and self._monotonic() - self._cached[0] < ttl:
                return self._cached[1]
        states: list[DiskState] = []
        for path in watched_paths(self.settings):
            try:
                states.append(
                    measure(path, self.settings.disk_reserve_percent, self.settings.disk_reserve_mb)
                )
            except OSError:
                continue
        with self._lock:
            self._cached = (self._monotonic(), states)
        return states

    def low(self) -> DiskState | None:
        """The file system that is nearly full, or None."""
        for state in self.states():
            if state.low:
                return state
        return None

    def forget(self) -> None:
        """Measure again on the next question (after a write failed for lack of space)."""
        with self._lock:
            self._cached = None


def is_disk_full_error(exc: BaseException) -> bool:
    """SQLite's ``SQLITE_FULL`` or the kernel's ``ENOSPC``/``EDQUOT``, also when
    it is the cause or context of another exception or inside an exception group."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, sqlite3.Error):
            code = getattr(current, "sqlite_errorcode", None)
            if (isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_FULL) or any(
                text in str(current).lower() for text in _FULL_MESSAGES
            ):
                return True
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)
    return False
