"""SQL of schedules and their firings. Every query is parameterised."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from app.core.clock import now_iso
from app.core.database import Database, Row
from app.core.pagination import PageParams

_COLUMNS = (
    "name, cron, timezone, starts_at, ends_at, max_runs, missed_policy, title, description,"
    " agent_id, project_id, priority, required_tools, needs_shell, handled_through, created_by"
)


async def insert_schedule(conn: aiosqlite.Connection, values: dict[str, Any]) -> int:
    now = now_iso()
    cursor = await conn.execute(
        f"INSERT INTO schedules ({_COLUMNS}, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            values["name"],
            values["cron"],
            values["timezone"],
            values["starts_at"],
            values["ends_at"],
            values["max_runs"],
            values["missed_policy"],
            values["title"],
            values["description"],
            values["agent_id"],
            values["project_id"],
            values["priority"],
            json.dumps(values["required_tools"]),
            int(values["needs_shell"]),
            values["handled_through"],
            values["created_by"],
            now,
            now,
        ),
    )
    return int(cursor.lastrowid or 0)


async def schedule_row(db: Database, schedule_id: int) -> Row | None:
    return await db.fetch_one(
        "SELECT * FROM schedules WHERE id = ? AND deleted_at IS NULL", (schedule_id,)
    )


async def schedule_row_tx(conn: aiosqlite.Connection, schedule_id: int) -> Row | None:
    async with conn.execute(
        "SELECT * FROM schedules WHERE id = ? AND deleted_at IS NULL", (schedule_id,)
    ) as cursor:
        row: Row | None = await cursor.fetchone()
    return row


async def list_schedules(db: Database, page: PageParams) -> tuple[list[Row], int]:
    rows = await db.fetch_all(
        "SELECT * FROM schedules WHERE deleted_at IS NULL ORDER BY id DESC LIMIT ? OFFSET ?",
        (page.limit, page.offset),
    )
    total = await db.fetch_one("SELECT count(*) FROM schedules WHERE deleted_at IS NULL")
    return rows, int(total[0]) if total is not None else 0


async def active_ids(db: Database) -> list[int]:
    rows = await db.fetch_all(
        "SELECT id FROM schedules WHERE status = 'active' AND deleted_at IS NULL ORDER BY id"
    )
    return [int(r["id"]) for r in rows]


async def set_state(
    conn: aiosqlite.Connection,
    schedule_id: int,
    *,
    status: str | None = None,
    handled_through: str | None = None,
    runs: int | None = None,
    ended_reason: str | None = None,
) -> None:
    """Change the status, the cursor and the run count together (any subset)."""
    sets = ["version = version + 1", "updated_at = ?"]
    params: list[Any] = [now_iso()]
    for column, value in (
        ("status", status),
        ("handled_through", handled_through),
        ("runs", runs),
        ("ended_reason", ended_reason),
    ):
        if value is not None:
            sets.append(f"{column} = ?")
            params.append(value)
    params.append(schedule_id)
    await conn.execute(
        f"UPDATE schedules SET {', '.join(sets)} WHERE id = ? AND deleted_at IS NULL", params
    )


async def soft_delete(conn: aiosqlite.Connection, schedule_id: int) -> bool:
    now = now_iso()
    cursor = await conn.execute(
        "UPDATE schedules SET deleted_at = ?, updated_at = ?, version = version + 1"
        " WHERE id = ? AND deleted_at IS NULL",
        (now, now, schedule_id),
    )
    return cursor.rowcount == 1


async def insert_firing(conn: aiosqlite.Connection, values: dict[str, Any]) -> int:
    """One firing. The unique index on (schedule_id, due_at) refuses a second one for
    the same due time (``sqlite3.IntegrityError``)."""
    cursor = await conn.execute(
        "INSERT INTO schedule_firings"
        " (schedule_id, due_at, kind, outcome, task_id, missed, detail, actor, fired_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            values["schedule_id"],
            values["due_at"],
            values["kind"],
            values["outcome"],
            values["task_id"],
            values["missed"],
            values["detail"],
            values["actor"],
            now_iso(),
        ),
    )
    return int(cursor.lastrowid or 0)


async def firing_row(db: Database, firing_id: int) -> Row | None:
    return await db.fetch_one("SELECT * FROM schedule_firings WHERE id = ?", (firing_id,))


async def list_firings(db: Database, schedule_id: int, page: PageParams) -> tuple[list[Row], int]:
    rows = await db.fetch_all(
        "SELECT * FROM schedule_firings WHERE schedule_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
        (schedule_id, page.limit, page.offset),
    )
    total = await db.fetch_one(
        "SELECT count(*) FROM schedule_firings WHERE schedule_id = ?", (schedule_id,)
    )
    return rows, int(total[0]) if total is not None else 0


async def open_escalation_tx(conn: aiosqlite.Connection, schedule_id: int) -> bool:
    """Is an escalation about this schedule's refused firings still open?"""
    async with conn.execute(
        "SELECT 1 FROM escalations WHERE kind = 'preflight_refused' AND subject_type = 'schedule'"
        " AND subject_id = ? AND status != 'resolved' LIMIT 1",
        (schedule_id,),
    ) as cursor:
        return await cursor.fetchone() is not None
