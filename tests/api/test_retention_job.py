"""Retention (F22): old events, notifications and transcripts go, in bounded
batches; recent rows and the audit log stay; each run is audited."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import aiosqlite
import pytest

from app import main
from app.core.clock import iso, utcnow
from app.core.context import AppContext
from app.retention import job as job_module
from app.retention import store
from app.retention.job import retention_job, run_retention
from app.security import audit


def days_ago(days: float) -> str:
    return iso(utcnow() - timedelta(days=days))


async def fill(ctx: AppContext) -> None:
    """Rows on both sides of every default limit (events 30 d, read notifications
    30 d, notifications 180 d, transcripts 90 d)."""
    async with ctx.db.write() as conn:
        for age in (400, 45, 31, 29, 1):
            await conn.execute(
                "INSERT INTO events (type, subject_type, actor, created_at)"
                " VALUES ('task.created', 'task', 'test', ?)",
                (days_ago(age),),
            )
        notifications = [
            # (age in days, read?)
            (200, False),  # older than 180: goes although unread
            (200, True),
            (40, True),  # read and older than 30: goes
            (40, False),  # unread, younger than 180: stays
            (10, True),  # read but recent: stays
        ]
        for age, read in notifications:
            await conn.execute(
                "INSERT INTO notifications (category, severity, title, created_at, read_at)"
                " VALUES ('task', 'info', ?, ?, ?)",
                (f"{age}-{read}", days_ago(age), days_ago(age - 1) if read else None),
            )
        await conn.execute(
            "INSERT INTO agents (name, role, model, quota_tokens_per_day, quota_cost_usd_per_day,"
            " quota_runs_per_day, created_at, updated_at) VALUES ('a', 'r', 'm', 1, 1, 1, ?, ?)",
            (days_ago(500), days_ago(500)),
        )
        await conn.execute(
            "INSERT INTO tasks (title, agent_id, created_by, created_at, updated_at)"
            " VALUES ('t', 1, 'test', ?, ?)",
            (days_ago(500), days_ago(500)),
        )
        conversations = [
            # (finished days ago or None, reason)
            (100, None),
            (95, "exit code 3"),
            (80, None),
            (None, None),  # still queued: never touched
        ]
        for finished, reason in conversations:
            await conn.execute(
                "INSERT INTO conversations (task_id, agent_id, status, finished_at, reason,"
                " transcript, created_at, updated_at) VALUES (1, 1, ?, ?, ?, 'long transcript',"
                " ?, ?)",
                (
                    "SUCCEEDED" if finished else "QUEUED",
                    days_ago(finished) if finished else None,
                    reason,
                    days_ago(120),
                    days_ago(120),
                ),
            )
        for n in range(3):
            await audit.append(conn, actor="test", action="test.old", summary={"n": n})


async def test_run_removes_only_what_is_too_old(ctx: AppContext) -> None:
    await fill(ctx)
    audit_before = await ctx.db.fetch_all("SELECT id, hash FROM audit_log ORDER BY id")
    counts = await run_retention(ctx, pause_s=0)
    assert counts == {
        "events": 3,
        "read_notifications": 2,
        "notifications": 1,
        "transcripts": 2,
        "review_diffs": 0,
        "rule_firings": 0,
    }
    events = await ctx.db.fetch_all("SELECT created_at FROM events ORDER BY id")
    assert len(events) == 2 and all(e[0] > days_ago(30) for e in events)
    titles = {r[0] for r in await ctx.db.fetch_all("SELECT title FROM notifications")}
    assert titles == {"40-False", "10-True"}
    rows = await ctx.db.fetch_all("SELECT transcript, reason FROM conversations ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("", store.TRANSCRIPT_MARKER),
        ("", f"exit code 3 {store.TRANSCRIPT_MARKER}"),
        ("long transcript", None),
        ("long transcript", None),
    ]
    # the audit log lost nothing, its chain holds, and the run is recorded
    audit_after = await ctx.db.fetch_all("SELECT id, hash FROM audit_log ORDER BY id")
    assert [tuple(r) for r in audit_after[: len(audit_before)]] == [tuple(r) for r in audit_before]
    assert (await audit.verify(ctx.db)).ok
    record = await ctx.db.fetch_one(
        "SELECT actor, summary FROM audit_log WHERE action = 'retention.run'"
    )
    assert record is not None and record[0] == "system:retention"
    summary = json.loads(record[1])
    assert summary["events"] == 3 and summary["transcripts"] == 2
    assert summary["events_days"] == 30
    # a second run finds nothing more
    assert await run_retention(ctx, pause_s=0) == {
        "events": 0,
        "read_notifications": 0,
        "notifications": 0,
        "transcripts": 0,
        "review_diffs": 0,
        "rule_firings": 0,
    }


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "retention_events_days": 401,
            "retention_notifications_days": 365,
            "retention_read_notifications_days": 100,
            "retention_transcripts_days": 99,
        }
    ],
)
async def test_limits_come_from_the_settings(ctx: AppContext) -> None:
    await fill(ctx)
    counts = await run_retention(ctx, pause_s=0)
    assert counts == {
        "events": 0,
        "read_notifications": 1,
        "notifications": 0,
        "transcripts": 1,
        "review_diffs": 0,
        "rule_firings": 0,
    }


async def test_work_is_done_in_bounded_batches(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ctx.db.write() as conn:
        await conn.executemany(
            "INSERT INTO events (type, subject_type, actor, created_at)"
            " VALUES ('task.created', 'task', 'test', ?)",
            [(days_ago(60),)] * 23,
        )
    seen: list[int] = []
    real = store.delete_events

    async def spy(conn: aiosqlite.Connection, before: str, limit: int) -> int:
        count = await real(conn, before, limit)
        seen.append(count)
        return count

    monkeypatch.setattr(store, "delete_events", spy)
    counts = await run_retention(ctx, batch=5, pause_s=0)
    assert counts["events"] == 23
    assert seen == [5, 5, 5, 5, 3]  # never more than one batch per statement


async def test_the_audit_log_cannot_be_trimmed(ctx: AppContext) -> None:
    """Defence in depth: even a retention bug could not delete audit records."""
    async with ctx.db.write() as conn:
        await audit.append(conn, actor="test", action="test.x")
    with pytest.raises(Exception, match="append-only"):
        async with ctx.db.write() as conn:
            await conn.execute("DELETE FROM audit_log")


async def test_the_job_is_registered_and_runs(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert retention_job in main.BACKGROUND_JOBS
    monkeypatch.setattr(job_module, "FIRST_RUN_AFTER_S", 0.0)
    ctx.settings.retention_interval_s = 0.05
    ctx.settings.clock_assume_synchronised = True  # the job waits for a synced clock
    async with ctx.db.write() as conn:
        await conn.execute(
            "INSERT INTO events (type, subject_type, actor, created_at)"
            " VALUES ('task.created', 'task', 'test', ?)",
            (days_ago(90),),
        )
    task = asyncio.create_task(retention_job(ctx))
    try:
        for _ in range(100):
            runs = await ctx.db.fetch_one(
                "SELECT count(*) FROM audit_log WHERE action = 'retention.run'"
            )
            if runs is not None and runs[0] >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert runs is not None and runs[0] >= 2
    left = await ctx.db.fetch_one("SELECT count(*) FROM events")
    assert left is not None and left[0] == 0
