"""SQL for missions. Every query is parameterised."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from app.core.clock import now_iso
from app.core.database import Database, Row
from app.core.pagination import PageParams

_LIVE = "m.deleted_at IS NULL"

# Spending is the larger of the mission's running total (kept by the worker)
# and the sum of its usage-ledger rows, so a bound holds whichever the worker
# maintains, and nothing is counted twice.
MISSION_SELECT = (
    "SELECT m.id, m.title, m.goal, m.steps, m.status, m.proposed_by,"
    " m.bound_cost_usd, m.bound_steps, m.bound_step_minutes, m.bound_tokens,"
    " max(m.spent_cost_usd, coalesce((SELECT sum(u.cost_usd) FROM usage_ledger u"
    "  WHERE u.mission_id = m.id), 0)) AS spent_cost_usd,"
    " max(m.spent_tokens, coalesce((SELECT sum(u.tokens) FROM usage_ledger u"
    "  WHERE u.mission_id = m.id), 0)) AS spent_tokens,"
    " (SELECT count(*) FROM tasks t WHERE t.mission_id = m.id)"
    "  AS tasks_created,"
    " m.decided_by, m.decided_at, m.decision_comment, m.version, m.created_at, m.updated_at"
    " FROM missions m"
)


async def insert_mission(conn: aiosqlite.Connection, values: dict[str, Any]) -> int:
    now = now_iso()
    cursor = await conn.execute(
        "INSERT INTO missions (title, goal, steps, status, proposed_by, bound_cost_usd,"
        " bound_steps, bound_step_minutes, bound_tokens, created_at, updated_at)"
        " VALUES (?, ?, ?, 'proposed', ?, ?, ?, ?, ?, ?, ?)",
        (
            values["title"],
            values["goal"],
            json.dumps(values["steps"], separators=(",", ":")),
            values["proposed_by"],
            values["bound_cost_usd"],
            values["bound_steps"],
            values["bound_step_minutes"],
            values["bound_tokens"],
            now,
            now,
        ),
    )
    return int(cursor.lastrowid or 0)


async def mission_row(db: Database, mission_id: int) -> Row | None:
    return await db.fetch_one(f"{MISSION_SELECT} WHERE m.id = ? AND {_LIVE}", (mission_id,))


async def mission_row_tx(conn: aiosqlite.Connection, mission_id: int) -> Row | None:
    """A live mission with its spending, read inside the caller's write transaction."""
    async with conn.execute(
        f"{MISSION_SELECT} WHERE m.id = ? AND {_LIVE}", (mission_id,)
    ) as cursor:
        row: Row | None = await cursor.fetchone()
        return row


async def list_missions(
    db: Database, page: PageParams, status: str | None
) -> tuple[list[Row], int]:
    where, params = _LIVE, []
    if status:
        where += " AND m.status = ?"
        params.append(status)
    rows = await db.fetch_all(
        f"{MISSION_SELECT} WHERE {where} ORDER BY m.id DESC LIMIT ? OFFSET ?",
        (*params, page.limit, page.offset),
    )
    total = await db.fetch_one(f"SELECT count(*) FROM missions m WHERE {where}", params)
    return rows, int(total[0]) if total else 0


async def set_status(
    conn: aiosqlite.Connection,
    mission_id: int,
    *,
    from_status: str,
    to_status: str,
    decided_by: str | None = None,
    comment: str | None = None,
) -> bool:
    """Move a mission from ``from_status`` to ``to_status`` (False if it moved meanwhile)."""
    now = now_iso()
    if decided_by is not None:
        cursor = await conn.execute(
            "UPDATE missions SET status = ?, decided_by = ?, decided_at = ?,"
            " decision_comment = ?, version = version + 1, updated_at = ?"
            " WHERE id = ? AND status = ? AND deleted_at IS NULL",
            (to_status, decided_by, now, comment, now, mission_id, from_status),
        )
    else:
        cursor = await conn.execute(
            "UPDATE missions SET status = ?, version = version + 1, updated_at = ?"
            " WHERE id = ? AND status = ? AND deleted_at IS NULL",
            (to_status, now, mission_id, from_status),
        )
    return cursor.rowcount == 1


async def token_creator(conn: aiosqlite.Connection, public_id: str) -> str | None:
    """Who created an API token (to catch approving one's own token's proposal)."""
    async with conn.execute(
        "SELECT created_by FROM api_tokens WHERE public_id = ?", (public_id,)
    ) as cursor:
        row = await cursor.fetchone()
    return str(row[0]) if row else None


async def steps_with_succeeded_task(conn: aiosqlite.Connection, mission_id: int) -> set[int]:
    async with conn.execute(
        "SELECT DISTINCT mission_step FROM tasks WHERE mission_id = ? AND status = 'succeeded'"
        " AND deleted_at IS NULL AND mission_step IS NOT NULL",
        (mission_id,),
    ) as cursor:
        return {int(r[0]) for r in await cursor.fetchall()}
