"""SQL for escalations."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from app.core.clock import now_iso


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
