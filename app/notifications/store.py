"""SQL for notifications."""

from __future__ import annotations

from typing import Any

import aiosqlite

from app.core.clock import now_iso
from app.core.database import Database, Row
from app.core.pagination import PageParams
from app.events.types import Category, Severity


async def insert_notification(
    conn: aiosqlite.Connection,
    *,
    category: Category,
    severity: Severity,
    title: str,
    body: str,
    muted: bool,
    webhook: bool,
    link: str | None = None,
) -> int:
    cursor = await conn.execute(
        "INSERT INTO notifications (category, severity, title, body, muted, webhook_state,"
        " webhook_next_at, created_at, link) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            category.value,
            severity.value,
            title[:200],
            body[:4000],
            int(muted),
            "pending" if webhook else "none",
            now_iso() if webhook else None,
            now_iso(),
            link,
        ),
    )
    return int(cursor.lastrowid or 0)


NOTIFICATION_COLUMNS = (
    "id, category, severity, title, body, muted, read_at, webhook_state, webhook_attempts,"
    " webhook_next_at, delivered_to, created_at, link"
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


async def add_delivered_to(conn: aiosqlite.Connection, notification_id: int, name: str) -> None:
    """Record that one channel has the notification (a retry skips it)."""
    await conn.execute(
        "UPDATE notifications SET delivered_to = CASE WHEN delivered_to = '' THEN ?"
        " ELSE delivered_to || ',' || ? END WHERE id = ?",
        (name, name, notification_id),
    )


# channels (names and state only; the URLs stay in the notifier's file) ------------
CHANNEL_COLUMNS = (
    "name, configured, service, breaker_state, consecutive_failures, breaker_opened_at,"
    " last_delivered_at, last_failed_at, last_error, updated_at"
)


async def any_channel(conn: aiosqlite.Connection) -> bool:
    """Is a channel configured? Notifications are queued for delivery only then."""
    async with conn.execute("SELECT 1 FROM notify_channels WHERE configured = 1 LIMIT 1") as cur:
        return await cur.fetchone() is not None


async def set_channels(conn: aiosqlite.Connection, names_services: list[tuple[str, str]]) -> None:
    """The notifier's file holds exactly these channels now."""
    now = now_iso()
    await conn.execute("UPDATE notify_channels SET configured = 0, updated_at = ?", (now,))
    for name, service in names_services:
        await conn.execute(
            "INSERT INTO notify_channels (name, configured, service, updated_at)"
            " VALUES (?, 1, ?, ?) ON CONFLICT (name) DO UPDATE SET configured = 1,"
            " service = excluded.service, updated_at = excluded.updated_at",
            (name, service, now),
        )


async def record_channel(
    conn: aiosqlite.Connection,
    name: str,
    *,
    delivered: bool,
    error: str | None,
    breaker_state: str,
    consecutive_failures: int,
    opened_at: str | None,
) -> None:
    now = now_iso()
    await conn.execute(
        "UPDATE notify_channels SET breaker_state = ?, consecutive_failures = ?,"
        " breaker_opened_at = ?, updated_at = ?,"
        " last_delivered_at = CASE WHEN ? THEN ? ELSE last_delivered_at END,"
        " last_failed_at = CASE WHEN ? THEN last_failed_at ELSE ? END,"
        " last_error = CASE WHEN ? THEN last_error ELSE ? END"
        " WHERE name = ?",
        (
            breaker_state,
            consecutive_failures,
            opened_at,
            now,
            int(delivered),
            now,
            int(delivered),
            now,
            int(delivered),
            error,
            name,
        ),
    )


async def list_channels(db: Database) -> list[Row]:
    return await db.fetch_all(
        f"SELECT {CHANNEL_COLUMNS} FROM notify_channels WHERE configured = 1 ORDER BY name"
    )


# "send test" requests ---------------------------------------------------------------
async def insert_test(conn: aiosqlite.Connection, channel: str, requested_by: str) -> int:
    cursor = await conn.execute(
        "INSERT INTO notify_tests (channel, requested_by, requested_at) VALUES (?, ?, ?)",
        (channel, requested_by, now_iso()),
    )
    return int(cursor.lastrowid or 0)


async def pending_test(conn: aiosqlite.Connection, channel: str) -> bool:
    async with conn.execute(
        "SELECT 1 FROM notify_tests WHERE channel = ? AND state = 'pending' LIMIT 1", (channel,)
    ) as cursor:
        return await cursor.fetchone() is not None


async def pending_tests(db: Database, limit: int) -> list[Row]:
    return await db.fetch_all(
        "SELECT id, channel, requested_by FROM notify_tests WHERE state = 'pending'"
        " ORDER BY id LIMIT ?",
        (limit,),
    )


async def finish_test(
    conn: aiosqlite.Connection, test_id: int, *, delivered: bool, outcome: str
) -> None:
    await conn.execute(
        "UPDATE notify_tests SET state = ?, outcome = ?, done_at = ? WHERE id = ?",
        ("delivered" if delivered else "failed", outcome, now_iso(), test_id),
    )


async def test_by_id(db: Database, test_id: int) -> Row | None:
    return await db.fetch_one(
        "SELECT id, channel, requested_by, requested_at, state, outcome, done_at"
        " FROM notify_tests WHERE id = ?",
        (test_id,),
    )


async def last_tests(db: Database) -> dict[str, Row]:
    """The newest test request of each channel."""
    rows = await db.fetch_all(
        "SELECT id, channel, requested_by, requested_at, state, outcome, done_at"
        " FROM notify_tests WHERE id IN (SELECT max(id) FROM notify_tests GROUP BY channel)"
    )
    return {str(r["channel"]): r for r in rows}


# the notifier's heartbeat -----------------------------------------------------------
async def beat(conn: aiosqlite.Connection, pid: int, started_at: str, channels: int) -> None:
    await conn.execute(
        "INSERT INTO notifier_heartbeat (id, pid, started_at, seen_at, channels)"
        " VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET pid = excluded.pid,"
        " started_at = excluded.started_at, seen_at = excluded.seen_at,"
        " channels = excluded.channels",
        (pid, started_at, now_iso(), channels),
    )


async def heartbeat(db: Database) -> Row | None:
    return await db.fetch_one(
        "SELECT pid, started_at, seen_at, channels FROM notifier_heartbeat WHERE id = 1"
    )
