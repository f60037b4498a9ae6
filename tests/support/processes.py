"""Helpers for the runner tests: process checks that do not rely on the code
under test (psutil, not app.runner.process)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

from app.profiles.profiles import Limits


def fast_limits(**overrides: object) -> Limits:
    """Limits for tests: seconds, not the production 15 minutes."""
    values: dict[str, object] = {"wall_clock_seconds": 3.0, "term_grace_seconds": 0.3}
    values.update(overrides)
    return Limits.model_validate(values)


def alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie (zombies run nothing)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def live_in_session(sid: int) -> list[int]:
    """Non-zombie processes whose session id is ``sid``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def read_pids(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().split() if line.strip()]


def kill_all(pids: Iterable[int]) -> None:
    """Test cleanup: never leave a fake agent behind even when an assertion failed."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, 9)


def wait_gone(pids: Iterable[int], within: float = 1.0) -> list[int]:
    """The pids still alive after ``within`` seconds."""
    pending = list(pids)
    deadline = time.monotonic() + within
    while pending and time.monotonic() < deadline:
        pending = [pid for pid in pending if alive(pid)]
        if pending:
            time.sleep(0.02)
    return [pid for pid in pending if alive(pid)]
