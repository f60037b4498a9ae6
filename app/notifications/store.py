"""SQL for notifications."""

from __future__ import annotations

import aiosqlite

from app.core.clock import now_iso
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
