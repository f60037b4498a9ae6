"""SQL of the retention job. Each statement touches at most ``limit`` rows.

The audit log is never named here: it is append-only (SQL triggers refuse any
DELETE) and outlives every retention period.
"""

from __future__ import annotations

import aiosqlite

from app.core.clock import now_iso

TRANSCRIPT_MARKER = "[transcript removed by retention policy]"


async def delete_events(conn: aiosqlite.Connection, before: str, limit: int) -> int:
    cursor = await conn.execute(
        "DELETE FROM events WHERE id IN"
        " (SELECT id FROM events WHERE created_at < ? ORDER BY id LIMIT ?)",
        (before, limit),
    )
    return cursor.rowcount


async def delete_read_notifications(conn: aiosqlite.Connection, before: str, limit: int) -> int:
    cursor = await conn.execute(
        "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications"
        " WHERE read_at IS NOT NULL AND created_at < ? ORDER BY id LIMIT ?)",
        (before, limit),
    )
    return cursor.rowcount


async def delete_notifications(conn: aiosqlite.Connection, before: str, limit: int) -> int:
    cursor = await conn.execute(
        "DELETE FROM notifications WHERE id IN"
        " (SELECT id FROM notifications WHERE created_at < ? ORDER BY id LIMIT ?)",
        (before, limit),
    )
    return cursor.rowcount


async def blank_transcripts(conn: aiosqlite.Connection, before: str, limit: int) -> int:
    """Empty the transcripts of conversations finished before ``before``; keep the rows."""
    cursor = await conn.execute(
        "UPDATE conversations SET transcript = '',"
        " reason = CASE WHEN reason IS NULL OR reason = '' THEN ?"
        " ELSE reason || ' ' || ? END, updated_at = ?"
        " WHERE id IN (SELECT id FROM conversations WHERE finished_at IS NOT NULL"
        " AND finished_at < ? AND transcript != '' ORDER BY id LIMIT ?)",
        (TRANSCRIPT_MARKER, TRANSCRIPT_MARKER, now_iso(), before, limit),
    )
    return cursor.rowcount


async def blank_review_diffs(conn: aiosqlite.Connection, before: str, limit: int) -> int:
    """Empty the workspace diffs of review rounds (agent output, like a transcript)
    that ended before ``before``; the rounds and their verdicts stay."""
    cursor = await conn.execute(
        "UPDATE task_reviews SET diff = '' WHERE id IN (SELECT id FROM task_reviews"
        " WHERE state NOT IN ('with_agent', 'with_human') AND updated_at < ?"
        " AND diff != '' ORDER BY id LIMIT ?)",
        (before, limit),
    )
    return cursor.rowcount


async def delete_rule_firings(conn: aiosqlite.Connection, before: str, limit: int) -> int:
    cursor = await conn.execute(
        "DELETE FROM rule_firings WHERE id IN"
        " (SELECT id FROM rule_firings WHERE fired_at < ? ORDER BY id LIMIT ?)",
        (before, limit),
    )
    return cursor.rowcount
