"""SQL for policies (one JSON document per named policy, versioned)."""

from __future__ import annotations

import aiosqlite

from app.core.clock import now_iso
from app.policies.model import DEFAULT_POLICY, NotificationPolicy

NOTIFICATIONS = "notifications"


async def load_notification_policy(conn: aiosqlite.Connection) -> tuple[NotificationPolicy, int]:
    async with conn.execute(
        "SELECT value, version FROM policies WHERE name = ?", (NOTIFICATIONS,)
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return DEFAULT_POLICY, 0
    return NotificationPolicy.model_validate_json(row[0]), int(row[1])


async def save_notification_policy(
    conn: aiosqlite.Connection, policy: NotificationPolicy, *, expected_version: int, actor: str
) -> int | None:
    """Store the policy if ``expected_version`` is current; return the new version."""
    value = policy.model_dump_json()
    if expected_version == 0:
        cursor = await conn.execute(
            "INSERT OR IGNORE INTO policies (name, value, version, updated_by, updated_at)"
            " VALUES (?, ?, 1, ?, ?)",
            (NOTIFICATIONS, value, actor, now_iso()),
        )
        return 1 if cursor.rowcount else None
    cursor = await conn.execute(
        "UPDATE policies SET value = ?, version = version + 1, updated_by = ?, updated_at = ?"
        " WHERE name = ? AND version = ?",
        (value, actor, now_iso(), NOTIFICATIONS, expected_version),
    )
    return expected_version + 1 if cursor.rowcount else None
