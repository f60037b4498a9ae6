"""SQL for notifications."""

from __future__ import annotations

from typing import Any

import aiosqlite

from app.core.clock import now_iso
from app.core.database import Database, Row
from app.core.pagination import PageParams
from app.policies.model import Category, Severity


async def insert_notification(
    conn: aiosqlite.Connection,
    *,
    category: Category,
    severity: Severity,
    title: str,
    body: str,
    muted: bool,
    webhook: bool,
) -> int:
    cursor = await conn.execute(
        "INSERT INTO notifications (category, severity, title, body, muted, webhook_state,"
        " webhook_next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            category.value,
            severity.value,
            title[:200],
            body[:4000],
            int(muted),
            "pending" if webhook else "none",
            now_iso() if webhook else None,
            now_iso(),
        ),
    )
    return int(cursor.lastrowid or 0)


NOTIFICATION_COLUMNS = (
    "id, category, severity, title, body, muted, read_at, webhook_state, webhook_attempts,"
    " webhook_next_at, created_at"
)
# A muted notification is hidden by default, but a security one never is, whatever
# its stored flag says (F6: defence in depth behind the policy model).
VISIBLE = "(muted = 0 OR category = 'security')"


def _filters(
    *, unread: bool | None, category: str | None, include_muted: bool
) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if not include_muted:
        where.append(VISIBLE)
    if unread is True:
        where.append("read_at IS NULL")
    elif unread is False:
        where.append("read_at IS NOT NULL")
    if category is not None:
        where.append("category = ?")
        params.append(category)
    return (" AND ".join(where) or "1 = 1"), params


async def list_notifications(
    db: Database,
    page: PageParams,
    *,
    unread: bool | None = None,
    category: str | None = None,
    include_muted: bool = False,
) -> tuple[list[Row], int]:
    clause, params = _filters(unread=unread, category=category, include_muted=include_muted)
    rows = await db.fetch_all(
        f"SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE {clause}"
        " ORDER BY id DESC LIMIT ? OFFSET ?",
        (*params, page.limit, page.offset),
    )
    total = await db.fetch_one(f"SELECT count(*) FROM notifications WHERE {clause}", params)
    return rows, int(total[0]) if total else 0


async def notification_by_id(db: Database, notification_id: int) -> Row | None:
    return await db.fetch_one(
        f"SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = ?", (notification_id,)
    )


async def notification_tx(conn: aiosqlite.Connection, notification_id: int) -> Row | None:
    async with conn.execute(
        f"SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = ?", (notification_id,)
    ) as cursor:
        row: Row | None = await cursor.fetchone()
    return row


async def mark_read(conn: aiosqlite.Connection, notification_id: int) -> bool:
    cursor = await conn.execute(
        "UPDATE notifications SET read_at = ? WHERE id = ? AND read_at IS NULL",
        (now_iso(), notification_id),
    )
    return cursor.rowcount > 0


async def mark_all_read(conn: aiosqlite.Connection, category: str | None = None) -> int:
    if category is None:
        cursor = await conn.execute(
            "UPDATE notifications SET read_at = ? WHERE read_at IS NULL", (now_iso(),)
        )
    else:
        cursor = await conn.execute(
            "UPDATE notifications SET read_at = ? WHERE read_at IS NULL AND category = ?",
            (now_iso(), category),
        )
    return cursor.rowcount


async def unread_by_category(db: Database) -> dict[str, int]:
    rows = await db.fetch_all(
        f"SELECT category, count(*) FROM notifications WHERE read_at IS NULL AND {VISIBLE}"
        " GROUP BY category"
    )
    return {str(r[0]): int(r[1]) for r in rows}


async def muted_unread(db: Database) -> int:
    row = await db.fetch_one(
        f"SELECT count(*) FROM notifications WHERE read_at IS NULL AND NOT {VISIBLE}"
    )
    return int(row[0]) if row else 0


# outbound webhook ----------------------------------------------------------------
async def due_webhooks(db: Database, now: str, limit: int) -> list[Row]:
    return await db.fetch_all(
        f"SELECT {NOTIFICATION_COLUMNS} FROM notifications"
        " WHERE webhook_state = 'pending' AND (webhook_next_at IS NULL OR webhook_next_at <= ?)"
        " ORDER BY webhook_next_at, id LIMIT ?",
        (now, limit),
    )


async def webhook_delivered(conn: aiosqlite.Connection, notification_id: int) -> None:
    await conn.execute(
        "UPDATE notifications SET webhook_state = 'delivered', webhook_next_at = NULL,"
        " webhook_attempts = webhook_attempts + 1 WHERE id = ? AND webhook_state = 'pending'",
        (notification_id,),
    )


async def webhook_retry(conn: aiosqlite.Connection, notification_id: int, next_at: str) -> None:
    await conn.execute(
        "UPDATE notifications SET webhook_attempts = webhook_attempts + 1, webhook_next_at = ?"
        " WHERE id = ? AND webhook_state = 'pending'",
        (next_at, notification_id),
    )


async def webhook_failed(
    conn: aiosqlite.Connection, notification_id: int, *, attempted: bool
) -> None:
    await conn.execute(
        "UPDATE notifications SET webhook_state = 'failed', webhook_next_at = NULL,"
        " webhook_attempts = webhook_attempts + ? WHERE id = ? AND webhook_state = 'pending'",
        (int(attempted), notification_id),
    )


async def webhook_defer(conn: aiosqlite.Connection, notification_id: int, next_at: str) -> None:
    """Postpone without counting an attempt (quiet hours)."""
    await conn.execute(
        "UPDATE notifications SET webhook_next_at = ? WHERE id = ? AND webhook_state = 'pending'",
        (next_at, notification_id),
    )
