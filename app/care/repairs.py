"""The ``repairs`` list of ``/api/health`` (the release beside it: app/health/release.py).

A repair is a current problem with its cause in plain words and the command or
page that fixes it. The findings come from the same checks as ``missionctl
monitor`` (``app/care/checks.py``): host checks (disk and the disk guard,
temperature, throttling, backup age, certificate, failed units, clock, VPN
peers), run in a thread and cached for ``repairs_cache_s`` seconds, because
some of them start a process; and database checks (runner circuits open and
whether any worker is alive, from ``worker_heartbeats``), read every time.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

from app.care.checks import check_circuits, check_workers, host_checks
from app.care.sandbox import sandbox_findings
from app.core.clock import iso, utcnow
from app.core.database import Database
from app.core.findings import Finding
from app.core.settings import Settings
from app.notifications.health import notify_findings

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


def _state(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def database_findings(db: Database, settings: Settings) -> list[Finding]:
    """Runner circuits open in a live worker; no live worker at all; agent runs
    not confined by the filesystem sandbox (or refused for the lack of it)."""
    since = iso(utcnow() - timedelta(minutes=settings.stale_run_minutes))
    rows = await db.fetch_all(
        "SELECT state, seen_at FROM worker_heartbeats WHERE seen_at >= ?", (since,)
    )
    findings = check_circuits([str(row[0]) for row in rows])
    idle = check_workers(len(rows))
    if idle is not None:
        findings.append(idle)
    workers = [{"seen_at": str(row[1]), "state": _state(str(row[0]))} for row in rows]
    findings += sandbox_findings(workers, settings.stale_run_minutes)
    return findings


async def current_repairs(db: Database, settings: Settings) -> list[dict[str, str]]:
    findings = await cached_host_checks(settings) + await database_findings(db, settings)
    findings += await notify_findings(db)  # health only: the monitor would notify of it
    findings.sort(key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), f.check))
    return [f.as_repair() for f in findings]
