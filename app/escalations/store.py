"""SQL for escalations."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from app.core.clock import now_iso
from app.core.database import Database, Row
from app.core.pagination import PageParams


async def insert_escalation(
    conn: aiosqlite.Connection,
    *,
    kind: str,
    subject_type: str,
    subject_id: int | None,
    reason: str,
    details: dict[str, Any],
) -> int:
    cursor = await conn.execute(
        "INSERT INTO escalations (kind, subject_type, subject_id, reason, details, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            kind,
            subject_type,
            subject_id,
            reason[:1000],
            json.dumps(details, default=str),
            now_iso(),
        ),
    )
    return int(cursor.lastrowid or 0)


ESCALATION_COLUMNS = (
    "id, kind, subject_type, subject_id, reason, details, status, acknowledged_by,"
    " acknowledged_at, resolved_by, resolved_at, resolution_comment, version, created_at"
)


async def list_escalations(
    db: Database, page: PageParams, *, status: str | None = None, kind: str | None = None
) -> tuple[list[Row], int]:
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if kind is not None:
        where.append("kind = ?")
        params.append(kind)
    clause = " AND ".join(where) or "1 = 1"
    rows = await db.fetch_all(
        f"SELECT {ESCALATION_COLUMNS} FROM escalations WHERE {clause}"
        " ORDER BY id DESC LIMIT ? OFFSET ?",
        (*params, page.limit, page.offset),
    )
    total = await db.fetch_one(f"SELECT count(*) FROM escalations WHERE {clause}", params)
    return rows, int(total[0]) if total else 0


async def escalation_by_id(db: Database, escalation_id: int) -> Row | None:
    return await db.fetch_one(
        f"SELECT {ESCALATION_COLUMNS} FROM escalations WHERE id = ?", (escalation_id,)
    )


async def escalation_tx(conn: aiosqlite.Connection, escalation_id: int) -> Row | None:
    async with conn.execute(
        f"SELECT {ESCALATION_COLUMNS} FROM escalations WHERE id = ?", (escalation_id,)
    ) as cursor:
        row: Row | None = await cursor.fetchone()
    return row


async def acknowledge(
    conn: aiosqlite.Connection, escalation_id: int, actor: str, version: int | None
) -> bool:
    """open -> acknowledged; False when the row is not open (or not at ``version``)."""
    cursor = await conn.execute(
        "UPDATE escalations SET status = 'acknowledged', acknowledged_by = ?,"
        " acknowledged_at = ?, version = version + 1"
        " WHERE id = ? AND status = 'open' AND (? IS NULL OR version = ?)",
        (actor, now_iso(), escalation_id, version, version),
    )
    return cursor.rowcount > 0


async def resolve(
    conn: aiosqlite.Connection,
    escalation_id: int,
    actor: str,
    comment: str,
    version: int | None,
) -> bool:
    """open or acknowledged -> resolved; False otherwise."""
    cursor = await conn.execute(
        "UPDATE escalations SET status = 'resolved', resolved_by = ?, resolved_at = ?,"
        " resolution_comment = ?, version = version + 1"
        " WHERE id = ? AND status IN ('open', 'acknowledged') AND (? IS NULL OR version = ?)",
        (actor, now_iso(), comment, escalation_id, version, version),
    )
    return cursor.rowcount > 0


async def counts_by_status(db: Database) -> dict[str, int]:
    rows = await db.fetch_all("SELECT status, count(*) FROM escalations GROUP BY status")
    return {str(r[0]): int(r[1]) for r in rows}


async def open_by_kind(db: Database) -> dict[str, int]:
    rows = await db.fetch_all(
        "SELECT kind, count(*) FROM escalations WHERE status IN ('open', 'acknowledged')"
        " GROUP BY kind ORDER BY kind LIMIT 100"
    )
    return {str(r[0]): int(r[1]) for r in rows}
