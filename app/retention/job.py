"""The retention job (F22): every ``retention_interval_s`` it removes

* events older than ``retention_events_days``;
* read notifications older than ``retention_read_notifications_days``;
* every notification older than ``retention_notifications_days``;
* the transcripts of conversations finished more than
  ``retention_transcripts_days`` ago (the row stays, with a marker in ``reason``);
* rule firings older than ``retention_events_days`` (the rate limit looks back
  one hour only).

It works in bounded batches (``BATCH`` rows per statement, one short write
transaction each, a pause between them so other writers are not starved, a
cap on batches per run so one run cannot go on for ever), logs what it removed
and appends a ``retention.run`` audit record with the counts. The audit log
itself is never touched.

The job deletes nothing while the wall clock is not known to be synchronised
(``app/care/clock.py``): a Pi without a battery clock can boot with a wrong
date, and every cutoff above is a wall-clock date. It logs why and tries again
at the next interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiosqlite

from app.care.clock import clock_state
from app.core.clock import iso, utcnow
from app.core.context import AppContext
from app.events.transaction import transaction
from app.retention import store

log = logging.getLogger("mission_control.retention")

ACTOR = "system:retention"
BATCH = 500
PAUSE_S = 0.05
MAX_BATCHES_PER_KIND = 2000
FIRST_RUN_AFTER_S = 60.0

Step = Callable[[aiosqlite.Connection, str, int], Awaitable[int]]


async def _in_batches(ctx: AppContext, step: Step, before: str, batch: int, pause_s: float) -> int:
    removed = 0
    for _ in range(MAX_BATCHES_PER_KIND):
        async with ctx.db.write() as conn:
            count = await step(conn, before, batch)
        removed += count
        if count < batch:
            break
        await asyncio.sleep(pause_s)  # let the other writers in
    return removed


def _cutoff(days: int) -> str:
    return iso(utcnow() - timedelta(days=days))


async def run_retention(
    ctx: AppContext, *, batch: int = BATCH, pause_s: float = PAUSE_S
) -> dict[str, int]:
    """One pass of every retention rule; the number of rows removed per rule."""
    settings = ctx.settings
    plan: list[tuple[str, Step, int]] = [
        ("events", store.delete_events, settings.retention_events_days),
        (
            "read_notifications",
            store.delete_read_notifications,
            settings.retention_read_notifications_days,
        ),
        ("notifications", store.delete_notifications, settings.retention_notifications_days),
        ("transcripts", store.blank_transcripts, settings.retention_transcripts_days),
        ("review_diffs", store.blank_review_diffs, settings.retention_transcripts_days),
        ("rule_firings", store.delete_rule_firings, settings.retention_events_days),
    ]
    counts: dict[str, int] = {}
    for name, step, days in plan:
        counts[name] = await _in_batches(ctx, step, _cutoff(days), batch, pause_s)
    days_kept = {f"{name}_days": days for name, _, days in plan}
    async with transaction(ctx, ACTOR) as tx:
        await tx.audit("retention.run", "retention", {**counts, **days_kept})
    log.info("retention run", extra={"removed": counts})
    return counts


async def retention_job(ctx: AppContext) -> None:
    """Background job: a first pass shortly after start, then every interval."""
    await asyncio.sleep(min(FIRST_RUN_AFTER_S, ctx.settings.retention_interval_s))
    while True:
        try:
            clock = await asyncio.to_thread(clock_state, ctx.settings)
            if clock.trusted:
                await run_retention(ctx)
            else:
                log.warning(
                    "retention skipped: the clock is not known to be synchronised",
                    extra={"clock_source": clock.source, "clock_detail": clock.detail},
                )
        except Exception:
            log.exception("retention run failed")
        await asyncio.sleep(ctx.settings.retention_interval_s)
