"""Retention also trims the record of rule firings (F22)."""

from __future__ import annotations

from app.core.context import AppContext
from app.retention.job import run_retention


async def test_old_rule_firings_are_removed_recent_ones_kept(ctx: AppContext) -> None:
    async with ctx.db.write() as conn:
        await conn.execute(
            "INSERT INTO rules (name, event_type, conditions, actions, created_by, created_at,"
            " updated_at) VALUES ('r', 'task.created', '[]', '[]', 't', 't', 't')"
        )
        await conn.executemany(
            "INSERT INTO rule_firings (rule_id, event_id, depth, outcome, fired_at)"
            " VALUES (1, ?, 0, 'ok', ?)",
            [(1, "2001-01-01T00:00:00.000000Z"), (2, "2999-01-01T00:00:00.000000Z")],
        )
    counts = await run_retention(ctx, pause_s=0)
    assert counts["rule_firings"] == 1
    left = await ctx.db.fetch_all("SELECT event_id FROM rule_firings")
    assert [r["event_id"] for r in left] == [2]
