"""SQL for trigger rules and their firings. Every query is parameterised."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from app.core.clock import now_iso
from app.core.database import Database, Row
from app.core.pagination import PageParams
from app.security import audit

RULE_COLUMNS = (
    "id, name, event_type, conditions, actions, enabled, approval, approved_by, approved_at,"
    " max_firings_per_hour, created_by, version, created_at, updated_at"
)
FIRING_COLUMNS = "id, rule_id, event_id, depth, outcome, fired_at"
_LIVE = "deleted_at IS NULL"

# Outcomes that count against a rule's hourly rate limit: it ran its actions.
EXECUTED_OUTCOMES_SQL = "(outcome = 'fired' OR outcome LIKE 'failed:%')"


# Audit actions that author a rule's content (its authors may not approve it).
def rule_target(rule_id: int) -> str:
    return f"rule:{rule_id}"


async def rule_row(db: Database, rule_id: int) -> Row | None:
    return await db.fetch_one(
        f"SELECT {RULE_COLUMNS} FROM rules WHERE id = ? AND {_LIVE}", (rule_id,)
    )


async def rule_row_tx(conn: aiosqlite.Connection, rule_id: int) -> Row | None:
    async with conn.execute(
        f"SELECT {RULE_COLUMNS} FROM rules WHERE id = ? AND {_LIVE}", (rule_id,)
    ) as cursor:
        row: Row | None = await cursor.fetchone()
        return row


async def list_rules(
    db: Database, page: PageParams, *, enabled: bool | None, event_type: str | None
) -> tuple[list[Row], int]:
    where: list[str] = [_LIVE]
    params: list[Any] = []
    if enabled is not None:
        where.append("enabled = ?")
        params.append(int(enabled))
    if event_type is not None:
        where.append("event_type = ?")
        params.append(event_type)
    clause = " AND ".join(where)
    rows = await db.fetch_all(
        f"SELECT {RULE_COLUMNS} FROM rules WHERE {clause} ORDER BY id LIMIT ? OFFSET ?",
        (*params, page.limit, page.offset),
    )
    total = await db.fetch_one(f"SELECT count(*) FROM rules WHERE {clause}", params)
    return rows, int(total[0]) if total else 0


async def insert_rule(conn: aiosqlite.Connection, values: dict[str, Any]) -> int:
    now = now_iso()
    cursor = await conn.execute(
        "INSERT INTO rules (name, event_type, conditions, actions, enabled, approval,"
        " max_firings_per_hour, created_by, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            values["name"],
            values["event_type"],
            json.dumps(values["conditions"], separators=(",", ":")),
            json.dumps(values["actions"], separators=(",", ":")),
            int(values["enabled"]),
            values["approval"],
            values["max_firings_per_hour"],
            values["created_by"],
            now,
            now,
        ),
    )
    return int(cursor.lastrowid or 0)


UPDATABLE = frozenset(
    {
        "name",
        "event_type",
        "conditions",
        "actions",
        "enabled",
        "approval",
        "approved_by",
        "approved_at",
        "max_firings_per_hour",
        "deleted_at",
    }
)


async def update_rule(
    conn: aiosqlite.Connection, rule_id: int, expected_version: int, changes: dict[str, Any]
) -> bool:
    """Apply ``changes`` if the rule is still at ``expected_version`` (else False)."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    assignments = ", ".join(f"{column} = ?" for column in changes)
    values = [
        json.dumps(v, separators=(",", ":"))
        if isinstance(v, list)
        else int(v)
        if isinstance(v, bool)
        else v
        for v in changes.values()
    ]
    cursor = await conn.execute(
        f"UPDATE rules SET {assignments}, version = version + 1, updated_at = ?"
        f" WHERE id = ? AND version = ? AND {_LIVE}",
        (*values, now_iso(), rule_id, expected_version),
    )
    return cursor.rowcount == 1


async def live_rules_for(db: Database, event_type: str) -> list[Row]:
    """Rules that may fire on ``event_type``: live, enabled and not awaiting approval."""
    return await db.fetch_all(
        f"SELECT {RULE_COLUMNS} FROM rules WHERE event_type = ? AND enabled = 1"
        f" AND approval IN ('not_needed', 'approved') AND {_LIVE} ORDER BY id",
        (event_type,),
    )


async def executed_since(db: Database, rule_id: int, since: str) -> int:
    row = await db.fetch_one(
        f"SELECT count(*) FROM rule_firings WHERE rule_id = ? AND fired_at >= ?"
        f" AND {EXECUTED_OUTCOMES_SQL}",
        (rule_id, since),
    )
    return int(row[0]) if row else 0


async def outcome_since(db: Database, rule_id: int, outcome: str, since: str) -> int:
    row = await db.fetch_one(
        "SELECT count(*) FROM rule_firings WHERE rule_id = ? AND outcome = ? AND fired_at >= ?",
        (rule_id, outcome, since),
    )
    return int(row[0]) if row else 0


async def insert_firing(
    conn: aiosqlite.Connection, *, rule_id: int, event_id: int, depth: int, outcome: str
) -> int:
    cursor = await conn.execute(
        "INSERT INTO rule_firings (rule_id, event_id, depth, outcome, fired_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (rule_id, event_id, depth, outcome[:100], now_iso()),
    )
    return int(cursor.lastrowid or 0)


async def list_firings(db: Database, rule_id: int, page: PageParams) -> tuple[list[Row], int]:
    rows = await db.fetch_all(
        f"SELECT {FIRING_COLUMNS} FROM rule_firings WHERE rule_id = ?"
        " ORDER BY id DESC LIMIT ? OFFSET ?",
        (rule_id, page.limit, page.offset),
    )
    total = await db.fetch_one("SELECT count(*) FROM rule_firings WHERE rule_id = ?", (rule_id,))
    return rows, int(total[0]) if total else 0


async def rule_authors(conn: aiosqlite.Connection, rule_id: int) -> set[str]:
    """Every actor who created or changed the rule, from the audit log."""
    return await audit.authors(conn, rule_target(rule_id))
