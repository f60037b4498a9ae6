"""SQL for conversations. The worker claims and finishes them; the API queues,
cancels and reads them. Every query is parameterised."""

from __future__ import annotations

import aiosqlite

from app.core.clock import now_iso
from app.core.database import Database, Row
from app.core.pagination import PageParams

SUMMARY_COLUMNS = (
    "c.id, c.task_id, c.agent_id, c.status, c.attempt, c.reason, c.truncated,"
    " c.input_tokens, c.output_tokens, c.cost_usd, c.exit_code, c.started_at, c.finished_at,"
    " c.created_at, c.updated_at, c.session_id, c.runtime, c.model, c.cached_tokens"
)
# Conversations of a deleted task are not shown.
_VISIBLE = "FROM conversations c JOIN tasks t ON t.id = c.task_id WHERE t.deleted_at IS NULL"


async def insert_queued(conn: aiosqlite.Connection, task_id: int, agent_id: int) -> int:
    """Queue a run. The unique index ``conversations_one_active`` refuses a second
    QUEUED/IN_PROGRESS conversation of one task (in-flight guard, F11)."""
    now = now_iso()
    cursor = await conn.execute(
        "INSERT INTO conversations (task_id, agent_id, status, created_at, updated_at)"
        " VALUES (?, ?, 'QUEUED', ?, ?)",
        (task_id, agent_id, now, now),
    )
    return int(cursor.lastrowid or 0)


async def active_for_task(conn: aiosqlite.Connection, task_id: int) -> Row | None:
    async with conn.execute(
        "SELECT id, status FROM conversations WHERE task_id = ?"
        " AND status IN ('QUEUED', 'IN_PROGRESS')",
        (task_id,),
    ) as cursor:
        row: Row | None = await cursor.fetchone()
        return row


async def cancel_active(conn: aiosqlite.Connection, task_id: int, reason: str) -> int | None:
    """Cancel the task's QUEUED or IN_PROGRESS conversation; the worker sees the
    CANCELLED state and stops the run. Returns its id, or None if there was none."""
    active = await active_for_task(conn, task_id)
    if active is None:
        return None
    now = now_iso()
    await conn.execute(
        "UPDATE conversations SET status = 'CANCELLED', reason = ?, finished_at = ?,"
        " updated_at = ? WHERE id = ? AND status IN ('QUEUED', 'IN_PROGRESS')",
        (reason[:500], now, now, active["id"]),
    )
    return int(active["id"])


async def conversation(db: Database, conversation_id: int) -> Row | None:
    return await db.fetch_one(
        f"SELECT {SUMMARY_COLUMNS}, c.transcript {_VISIBLE} AND c.id = ?",
        (conversation_id,),
    )


async def list_conversations(
    db: Database, page: PageParams, *, status: str | None, task_id: int | None
) -> tuple[list[Row], int]:
    where = ""
    params: list[object] = []
    if status:
        where += " AND c.status = ?"
        params.append(status)
    if task_id is not None:
        where += " AND c.task_id = ?"
        params.append(task_id)
    rows = await db.fetch_all(
        f"SELECT {SUMMARY_COLUMNS} {_VISIBLE}{where} ORDER BY c.id DESC LIMIT ? OFFSET ?",
        (*params, page.limit, page.offset),
    )
    total = await db.fetch_one(f"SELECT count(*) {_VISIBLE}{where}", params)
    return rows, int(total[0]) if total else 0
