"""SQL for the event log."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from app.core.clock import now_iso
from app.core.database import Database, Row
from app.events.types import EventType
from app.security.principal import Scope

EVENT_COLUMNS = (
    "id, type, subject_type, subject_id, actor, min_scope, rule_depth, payload, created_at"
)


async def insert_event(
    conn: aiosqlite.Connection,
    *,
    event_type: EventType,
    subject_type: str,
    subject_id: int | None,
    actor: str,
    payload: dict[str, Any],
    min_scope: Scope = Scope.READ,
    rule_depth: int = 0,
) -> int:
    cursor = await conn.execute(
        "INSERT INTO events (type, subject_type, subject_id, actor, min_scope, rule_depth,"
        " payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event_type.value,
            subject_type,
            subject_id,
            actor,
            min_scope.value,
            rule_depth,
            json.dumps(payload, separators=(",", ":"), default=str),
            now_iso(),
        ),
    )
    return int(cursor.lastrowid or 0)


def scopes_visible_to(scope: Scope) -> list[str]:
    return [s.value for s in Scope if scope.allows(s)]


async def events_after(db: Database, last_id: int, scope: Scope, limit: int = 200) -> list[Row]:
    visible = scopes_visible_to(scope)
    marks = ",".join("?" for _ in visible)
    return await db.fetch_all(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE id > ? AND min_scope IN ({marks})"
        " ORDER BY id LIMIT ?",
        (last_id, *visible, limit),
    )


async def latest_event_id(db: Database) -> int:
    row = await db.fetch_one("SELECT coalesce(max(id), 0) FROM events")
    return int(row[0]) if row else 0


def event_dict(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "type": row["type"],
        "subject_type": row["subject_type"],
        "subject_id": row["subject_id"],
        "actor": row["actor"],
        "rule_depth": row["rule_depth"],
        "payload": json.loads(row["payload"]),
        "created_at": row["created_at"],
    }
