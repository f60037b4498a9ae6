"""Did the API stop cleanly last time? A marker file says so.

At start the API writes ``<state dir>/api.running`` (its pid, the kernel's boot
id, the start time) and flushes it to disk; a clean stop (systemd's SIGTERM,
Ctrl-C: the end of the lifespan) removes it. A start that finds the marker
knows that the previous process ended without a clean stop: killed (``kill
-9``, out of memory, the watchdog) when the boot id is the same, a power cut or
a reset when it changed. The API then checks the database (``PRAGMA
quick_check``) and tells the owner with a system notification, so a power cut
is never silent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.clock import iso, utcnow

if TYPE_CHECKING:
    from app.core.context import AppContext

log = logging.getLogger(__name__)

MARKER_NAME = "api.running"
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
ACTOR = "system:shutdown-check"


@dataclass(frozen=True)
class UncleanStop:
    """What the marker left by the previous API process says."""

    pid: int | None
    started_at: str | None
    #: True: the machine rebooted meanwhile (power cut, reset); False: same
    #: boot (the process was killed); None: unknown (no boot id)
    rebooted: bool | None


def marker_path(state_dir: Path) -> Path:
    return state_dir / MARKER_NAME


def boot_id(path: Path = BOOT_ID_PATH) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_marker(path: Path) -> dict[str, object] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}  # torn or empty: the previous process died while writing it
    return data if isinstance(data, dict) else {}


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_marker(path: Path, content: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(content).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    _fsync_dir(path.parent)


def claim(
    state_dir: Path, *, given_boot_id: str | None = None, boot_id_path: Path = BOOT_ID_PATH
) -> UncleanStop | None:
    """Record that this process runs; return how the previous one ended, if badly.

    ``given_boot_id`` is systemd's (``MC_BOOT_ID``, from the unit's ``%b``): a
    sandboxed unit's own /proc may show the host kernel's boot ID in a
    container. A marker whose process is still alive in the same boot belongs
    to another API on the same state directory (not a crash): not reported."""
    path = marker_path(state_dir)
    current_boot = given_boot_id or boot_id(boot_id_path)
    previous = _read_marker(path)
    unclean: UncleanStop | None = None
    if previous is not None:
        pid = previous.get("pid")
        pid = pid if isinstance(pid, int) and pid > 0 else None
        started = previous.get("started_at")
        old_boot = previous.get("boot_id")
        rebooted = (
            None
            if not isinstance(old_boot, str) or current_boot is None
            else old_boot != current_boot
        )
        same_process_alive = (
            rebooted is False and pid is not None and pid != os.getpid() and _pid_alive(pid)
        )
        if not same_process_alive:
            unclean = UncleanStop(
                pid=pid, started_at=started if isinstance(started, str) else None, rebooted=rebooted
            )
    try:
        _write_marker(
            path, {"pid": os.getpid(), "boot_id": current_boot, "started_at": iso(utcnow())}
        )
    except OSError as exc:
        # a full or read-only disk must not stop the API from serving reads
        log.warning("cannot write the run marker %s: %s", path, exc.strerror)
    return unclean


def release(state_dir: Path) -> None:
    """A clean stop: remove the marker (and make the removal durable)."""
    path = marker_path(state_dir)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    _fsync_dir(path.parent)


def describe(stop: UncleanStop, check: str) -> tuple[str, str]:
    """Title and body of the owner's notification (plain words, what to do)."""
    since = f" (it had started at {stop.started_at})" if stop.started_at else ""
    if stop.rebooted:
        cause = (
            "The machine lost power or was reset while Mission Control was running"
            f"{since}: it did not shut down."
        )
        advice = (
            " If this was not a planned power-off, check the power supply"
            " (the health page lists under-voltage)."
        )
    elif stop.rebooted is False:
        pid = f" (pid {stop.pid})" if stop.pid else ""
        cause = (
            f"The API process{pid} ended without a clean stop{since}: it was killed,"
            " ran out of memory or missed its watchdog; systemd restarted it."
        )
        advice = " 'journalctl -u mission-control -b' shows why."
    else:
        cause = f"Mission Control did not stop cleanly last time{since}."
        advice = " 'journalctl -u mission-control' shows why."
    if check == "ok":
        state = " The database was checked at start: ok. Acknowledged changes are kept."
    else:
        state = (
            f" The database check at start FAILED ({check[:200]})."
            " Restore the last backup: 'sudo missionctl backup restore'."
        )
    return "Unclean shutdown detected", cause + state + advice


async def database_check(ctx: AppContext) -> str:
    """``PRAGMA quick_check``: "ok", or the first problem it names."""
    try:
        rows = await ctx.db.fetch_all("PRAGMA quick_check")
    except Exception as exc:
        return f"the check could not run: {type(exc).__name__}"
    first = str(rows[0][0]) if rows else "no result"
    return "ok" if first == "ok" and len(rows) == 1 else first


async def report_unclean_stop(ctx: AppContext, stop: UncleanStop) -> None:
    """Tell the owner (a system notification; the webhook too, if one is set)."""
    from app.events.transaction import transaction
    from app.events.types import Category, Severity

    check = await database_check(ctx)
    title, body = describe(stop, check)
    severity = Severity.CRITICAL if check != "ok" else Severity.WARNING
    log.warning(
        "unclean shutdown detected (rebooted: %s, database check: %s)", stop.rebooted, check
    )
    try:
        async with transaction(ctx, ACTOR, "local") as tx:
            await tx.notify(Category.SYSTEM, severity, title, body)
    except Exception:
        log.exception("could not store the unclean-shutdown notification")
