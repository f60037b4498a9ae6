"""Stored health samples: the table of migration 0003, its SQL, and the JSON series
``GET /api/health/samples`` for API clients (the Health page draws the same rows).

One row per ``health_sample_interval_s``, written by :mod:`app.health.sampler`,
which also removes rows older than ``health_sample_retention_days`` with
:func:`delete_samples` (a step with the signature of the retention job's steps).
Every query is parameterised.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import aiosqlite
from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.access.dependencies import ReadAccess
from app.core.clock import iso, utcnow
from app.core.context import Ctx
from app.core.database import Database

#: at most this many samples in one answer: 7 days at the default interval of 5 min
MAX_POINTS = 2016
MAX_HOURS = 168

router = APIRouter(tags=["health"])


class Sample(BaseModel):
    """One measurement of the host and the service."""

    sampled_at: str
    cpu_temperature_c: float | None
    memory_used_percent: float
    disk_used_percent: float
    load1: float | None
    requests_per_minute: float


class SampleSeries(BaseModel):
    hours: int
    since: str
    until: str
    interval_s: float
    count: int
    #: True when the window held more than ``MAX_POINTS`` samples: the newest are given
    truncated: bool
    items: list[Sample]


_COLUMNS = (
    "sampled_at, cpu_temperature_c, memory_used_percent, disk_used_percent,"
    " load1, requests_per_minute"
)


async def insert_sample(conn: aiosqlite.Connection, sample: Sample) -> int:
    cursor = await conn.execute(
        f"INSERT INTO health_samples ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        (
            sample.sampled_at,
            sample.cpu_temperature_c,
            sample.memory_used_percent,
            sample.disk_used_percent,
            sample.load1,
            sample.requests_per_minute,
        ),
    )
    return int(cursor.lastrowid or 0)


async def samples_between(
    db: Database, since: str, until: str, limit: int | None = None
) -> tuple[list[Sample], bool]:
    """Samples with ``since <= sampled_at <= until``, oldest first; at most ``limit``
    (``MAX_POINTS`` by default; the newest), and whether more were there."""
    limit = MAX_POINTS if limit is None else limit
    rows = await db.fetch_all(
        f"SELECT {_COLUMNS} FROM health_samples WHERE sampled_at >= ? AND sampled_at <= ?"
        " ORDER BY sampled_at DESC LIMIT ?",
        (since, until, limit + 1),
    )
    truncated = len(rows) > limit
    return [Sample(**dict(r)) for r in reversed(rows[:limit])], truncated


async def recent_samples(db: Database, hours: int) -> tuple[list[Sample], str, str, bool]:
    """The samples of the last ``hours`` hours, the window's bounds, and truncation."""
    now = utcnow()
    since, until = iso(now - timedelta(hours=hours)), iso(now)
    items, truncated = await samples_between(db, since, until)
    return items, since, until, truncated


async def delete_samples(conn: aiosqlite.Connection, before: str, limit: int) -> int:
    """At most ``limit`` samples older than ``before`` (oldest first)."""
    cursor = await conn.execute(
        "DELETE FROM health_samples WHERE id IN"
        " (SELECT id FROM health_samples WHERE sampled_at < ? ORDER BY id LIMIT ?)",
        (before, limit),
    )
    return cursor.rowcount


@router.get("/api/health/samples")
async def health_samples(
    _: ReadAccess,
    ctx: Ctx,
    hours: Annotated[int, Query(ge=1, le=MAX_HOURS, description="the window, 1 to 168")] = 24,
) -> SampleSeries:
    """Scope read. The stored health samples of the last ``hours`` hours, oldest first:
    CPU temperature (null where the host has no sensor), memory and disk used in
    percent, the 1-minute load and the API's requests per minute. One sample per
    ``interval_s``; at most 2016 samples (the newest; ``truncated`` says so)."""
    items, since, until, truncated = await recent_samples(ctx.db, hours)
    return SampleSeries(
        hours=hours,
        since=since,
        until=until,
        interval_s=ctx.settings.health_sample_interval_s,
        count=len(items),
        truncated=truncated,
        items=items,
    )
