"""The ``repairs`` list of ``/api/health`` and the release shown beside it.

A repair is a current problem with its cause in plain words and the command or
page that fixes it. The findings come from the same checks as ``missionctl
monitor`` (``app/monitoring/checks.py``): host checks (disk and the disk guard,
temperature, throttling, backup age, certificate, failed units, clock, VPN
peers), run in a thread and cached for ``repairs_cache_s`` seconds, because
some of them start a process; and database checks (runner circuits open and
whether any worker is alive, from ``worker_heartbeats``), read every time.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.core.clock import iso, utcnow
from app.core.database import Database
from app.core.settings import Settings
from app.monitoring.checks import Finding, check_circuits, check_workers, host_checks

SEVERITY_ORDER = {"critical": 0, "warning": 1}

_cache: tuple[Settings, float, list[Finding]] | None = None


async def cached_host_checks(settings: Settings) -> list[Finding]:
    """``host_checks`` at most once per ``repairs_cache_s`` (per settings object)."""
    global _cache
    cached = _cache
    if (
        cached is not None
        and cached[0] is settings
        and time.monotonic() - cached[1] < settings.repairs_cache_s
    ):
        return list(cached[2])
    findings = await asyncio.to_thread(host_checks, settings)
    _cache = (settings, time.monotonic(), findings)
    return list(findings)


def forget_cache() -> None:
    global _cache
    _cache = None


async def database_findings(db: Database, settings: Settings) -> list[Finding]:
    """Runner circuits open in a live worker; no live worker at all."""
    since = iso(utcnow() - timedelta(minutes=settings.stale_run_minutes))
    rows = await db.fetch_all("SELECT state FROM worker_heartbeats WHERE seen_at >= ?", (since,))
    findings = check_circuits([str(row[0]) for row in rows])
    idle = check_workers(len(rows))
    if idle is not None:
        findings.append(idle)
    return findings


async def current_repairs(db: Database, settings: Settings) -> list[dict[str, str]]:
    findings = await cached_host_checks(settings) + await database_findings(db, settings)
    findings.sort(key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), f.check))
    return [f.as_repair() for f in findings]


def _release_name(link: Path) -> str | None:
    try:
        if not link.is_symlink():
            return None
        target = link.resolve(strict=True)
    except OSError:
        return None
    return target.name if target.is_dir() else None


def release_info(root: Path, running: str) -> dict[str, Any]:
    """The running version; with the release layout (``<root>/releases/<name>``,
    links ``<root>/current`` and, after an update, ``<root>/previous``) also the
    current and previous releases. Without a ``previous`` link the newest other
    release directory counts as the previous one."""
    info: dict[str, Any] = {"running": running, "layout": False}
    releases = root / "releases"
    current = _release_name(root / "current")
    if current is None or not releases.is_dir():
        return info
    previous = _release_name(root / "previous")
    try:
        others = sorted(
            (entry for entry in os.scandir(releases) if entry.is_dir() and entry.name != current),
            key=lambda entry: entry.stat().st_mtime,
            reverse=True,
        )
    except OSError:
        others = []
    if previous is None or previous == current:
        previous = others[0].name if others else None
    info.update(
        {
            "layout": True,
            "current": current,
            "previous": previous,
            "installed": sorted([current, *(entry.name for entry in others)])[:20],
        }
    )
    return info
