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
    notification_id = int(cursor.lastrowid or 0)
    if webhook:
        await open_deliveries(conn, notification_id)
    return notification_id


NOTIFICATION_COLUMNS = (
    "id, category, severity, title, body, muted, read_at, webhook_state, webhook_attempts,"
    " webhook_next_at, created_at, link"
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


# delivery per channel (the notifier writes these, docs/notifications.md) ---------------
DELIVERY_COLUMNS = "notification_id, channel, state, attempts, next_at, sent_at, last_error"


async def open_deliveries(conn: aiosqlite.Connection, notification_id: int) -> None:
    """One pending delivery per channel the notifier has, due now."""
    now = now_iso()
    await conn.execute(
        "INSERT OR IGNORE INTO notification_deliveries (notification_id, channel, state,"
        " attempts, next_at, updated_at) SELECT ?, name, 'pending', 0, ?, ? FROM notify_channels"
        " WHERE configured = 1",
        (notification_id, now, now),
    )


async def deliveries_of(db: Database, ids: list[int]) -> dict[int, list[Row]]:
    """The deliveries of these notifications, by notification, in channel order."""
    found: dict[int, list[Row]] = {i: [] for i in ids}
    if not ids:
        return found
    marks = ", ".join("?" for _ in ids)
    rows = await db.fetch_all(
        f"SELECT {DELIVERY_COLUMNS} FROM notification_deliveries"
        f" WHERE notification_id IN ({marks}) ORDER BY notification_id, channel",
        ids,
    )
    for row in rows:
        found[int(row["notification_id"])].append(row)
    return found


async def due_deliveries(db: Database, channel: str, now: str, limit: int) -> list[Row]:
    """One channel's pending deliveries whose next attempt has come, oldest first."""
    return await db.fetch_all(
        "SELECT d.notification_id, d.attempts, n.category, n.severity, n.title, n.body"
        " FROM notification_deliveries d JOIN notifications n ON n.id = d.notification_id"
        " WHERE d.channel = ? AND d.state = 'pending' AND d.next_at <= ?"
        " ORDER BY d.next_at, d.notification_id LIMIT ?",
        (channel, now, limit),
    )


async def delivery_sent(conn: aiosqlite.Connection, notification_id: int, channel: str) -> bool:
    """The channel has it: sent once, never again. False if it was no longer pending."""
    now = now_iso()
    cursor = await conn.execute(
        "UPDATE notification_deliveries SET state = 'sent', attempts = attempts + 1,"
        " next_at = NULL, sent_at = ?, last_error = NULL, updated_at = ?"
        " WHERE notification_id = ? AND channel = ? AND state = 'pending'",
        (now, now, notification_id, channel),
    )
    return cursor.rowcount > 0


async def delivery_retry(
    conn: aiosqlite.Connection, notification_id: int, channel: str, next_at: str, error: str
) -> None:
    await conn.execute(
        "UPDATE notification_deliveries SET attempts = attempts + 1, next_at = ?,"
        " last_error = ?, updated_at = ? WHERE notification_id = ? AND channel = ?"
        " AND state = 'pending'",
        (next_at, error, now_iso(), notification_id, channel),
    )


async def delivery_failed(
    conn: aiosqlite.Connection, notification_id: int, channel: str, error: str
) -> None:
    """Given up on this channel (the others go on)."""
    await conn.execute(
        "UPDATE notification_deliveries SET state = 'failed', attempts = attempts + 1,"
        " next_at = NULL, last_error = ?, updated_at = ? WHERE notification_id = ?"
        " AND channel = ? AND state = 'pending'",
        (error, now_iso(), notification_id, channel),
    )


async def delivery_defer(
    conn: aiosqlite.Connection, notification_id: int, channel: str, next_at: str
) -> None:
    """Postpone without counting an attempt (quiet hours)."""
    await conn.execute(
        "UPDATE notification_deliveries SET next_at = ?, updated_at = ?"
        " WHERE notification_id = ? AND channel = ? AND state = 'pending'",
        (next_at, now_iso(), notification_id, channel),
    )


# the notification's webhook_* columns summarise its deliveries
_OF = "FROM notification_deliveries d WHERE d.notification_id = notifications.id"
_SUMMARY = (
    "UPDATE notifications SET webhook_state = CASE"
    f" WHEN EXISTS (SELECT 1 {_OF} AND d.state = 'pending') THEN 'pending'"
    f" WHEN NOT EXISTS (SELECT 1 {_OF}) THEN 'none'"
    f" WHEN NOT EXISTS (SELECT 1 {_OF} AND d.state = 'failed') THEN 'delivered'"
    f" WHEN EXISTS (SELECT 1 {_OF} AND d.state = 'sent') THEN 'partial' ELSE 'failed' END,"
    f" webhook_attempts = max(webhook_attempts, (SELECT coalesce(max(d.attempts), 0) {_OF})),"
    f" webhook_next_at = (SELECT min(d.next_at) {_OF} AND d.state = 'pending')"
)


async def settle(conn: aiosqlite.Connection, notification_id: int) -> None:
    """Bring the notification's summary in line with its channels' deliveries."""
    await conn.execute(f"{_SUMMARY} WHERE id = ?", (notification_id,))


async def reconcile_channels(conn: aiosqlite.Connection, names: list[str]) -> None:
    """The notifier's channels are exactly ``names`` now: a channel that left its
    file is given up for what it still waited for, a new one gets what is still
    waiting, and the waiting notifications' summaries are brought in line."""
    now = now_iso()
    marks = ", ".join("?" for _ in names)
    await conn.execute(
        "UPDATE notification_deliveries SET state = 'failed', next_at = NULL, last_error = ?,"
        f" updated_at = ? WHERE state = 'pending' AND channel NOT IN ({marks})",
        (CHANNEL_REMOVED, now, *names),
    )
    for name in names:
        await conn.execute(
            "INSERT OR IGNORE INTO notification_deliveries (notification_id, channel, state,"
            " attempts, next_at, updated_at) SELECT id, ?, 'pending', 0, ?, ?"
            " FROM notifications WHERE webhook_state = 'pending'",
            (name, now, now),
        )
    await conn.execute(f"{_SUMMARY} WHERE webhook_state = 'pending'")


CHANNEL_REMOVED = "the channel is no longer in the notifier's file"


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
