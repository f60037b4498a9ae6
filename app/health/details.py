"""The detailed health report: what ``GET /api/health``, the UI's Health page and
dashboard, and ``missionctl support-bundle`` show (F5). One function, called by
each of them; no router calls another."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from app import __version__
from app.backup.archive import newest_backup_age
from app.care.probes import system_figures
from app.care.repairs import current_repairs
from app.care.sandbox import sandbox_summary
from app.core.context import AppContext
from app.core.database import database_ok
from app.health.release import release_info
from app.profiles.catalog import profiles_status


async def worker_heartbeats(ctx: AppContext) -> list[dict[str, Any]]:
    rows = await ctx.db.fetch_all(
        "SELECT worker_id, pid, hostname, started_at, seen_at, state FROM worker_heartbeats"
        " ORDER BY seen_at DESC LIMIT 20"
    )
    return [{**dict(r), "state": json.loads(r["state"])} for r in rows]


async def health_report(ctx: AppContext) -> dict[str, Any]:
    """The detailed report; also what ``missionctl support-bundle`` stores."""
    db_ok = await database_ok(ctx.db)
    settings = ctx.settings
    age = await asyncio.to_thread(newest_backup_age, settings.backups_path)
    figures = await asyncio.to_thread(
        system_figures, str(settings.state_dir), str(settings.database_path)
    )
    workers = await worker_heartbeats(ctx)
    repairs = await current_repairs(ctx.db, settings)
    return {
        "status": "ok" if db_ok else "degraded",
        "version": __version__,
        "database": {"ok": db_ok, "bytes": figures.pop("database_bytes")},
        "service_uptime_s": int(time.monotonic() - ctx.started_monotonic),
        "system": figures,
        "workers": workers,
        "runner_sandbox": sandbox_summary(workers, settings.stale_run_minutes),
        "profiles": (await asyncio.to_thread(profiles_status, settings)).as_dict(),
        "last_backup_age_s": int(age.total_seconds()) if age is not None else None,
        "release": await asyncio.to_thread(release_info, settings.release_root, __version__),
        "repairs": repairs,
    }
