"""SQL for agents, their identity versions and memory."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from app.core.clock import now_iso
from app.core.database import Database, Row
from app.core.pagination import PageParams

AGENT_COLUMNS = (
    "id, name, role, model, status, profile, shell_access, allowed_tools,"
    " quota_tokens_per_day, quota_cost_usd_per_day, quota_runs_per_day,"
    " think_interval_minutes, identity_version, version, created_at, updated_at"
)
_LIVE = "deleted_at IS NULL"


async def agent_row(db: Database, agent_id: int) -> Row | None:
    """A live (not deleted) agent, read outside a transaction."""
    return await db.fetch_one(
        f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = ? AND {_LIVE}",
        (agent_id,),
    )


async def agent_row_tx(conn: aiosqlite.Connection, agent_id: int) -> Row | None:
    """A live agent, read inside the caller's write transaction."""
    async with conn.execute(
        f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = ? AND {_LIVE}",
        (agent_id,),
    ) as cursor:
        row: Row | None = await cursor.fetchone()
        return row


async def list_agents(db: Database, page: PageParams, status: str | None) -> tuple[list[Row], int]:
    where, params = _LIVE, []
    if status:
        where += " AND status = ?"
        params.append(status)
    rows = await db.fetch_all(
        f"SELECT {AGENT_COLUMNS} FROM agents WHERE {where} ORDER BY id LIMIT ? OFFSET ?",
        (*params, page.limit, page.offset),
    )
    total = await db.fetch_one(f"SELECT count(*) FROM agents WHERE {where}", params)
    return rows, int(total[0]) if total else 0


async def insert_agent(conn: aiosqlite.Connection, values: dict[str, Any]) -> int:
    now = now_iso()
    cursor = await conn.execute(
        "INSERT INTO agents (name, role, model, profile, shell_access, allowed_tools,"
        " quota_tokens_per_day, quota_cost_usd_per_day, quota_runs_per_day,"
        " think_interval_minutes, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            values["name"],
            values["role"],
            values["model"],
            values["profile"],
            int(values["shell_access"]),
            json.dumps(values["allowed_tools"]),
            values["quota_tokens_per_day"],
            values["quota_cost_usd_per_day"],
            values["quota_runs_per_day"],
            values["think_interval_minutes"],
            now,
            now,
        ),
    )
    return int(cursor.lastrowid or 0)


UPDATABLE = {
    "role",
    "model",
    "profile",
    "shell_access",
    "allowed_tools",
    "quota_tokens_per_day",
    "quota_cost_usd_per_day",
    "quota_runs_per_day",
    "think_interval_minutes",
    "status",
    "identity_version",
    "deleted_at",
}


async def update_agent(
    conn: aiosqlite.Connection, agent_id: int, expected_version: int, changes: dict[str, Any]
) -> bool:
    """Apply ``changes`` if the agent is still at ``expected_version`` (else False)."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    # (no changes at all is valid too: the version still moves on)
    assignments = "".join(f"{column} = ?, " for column in changes)
    values = [json.dumps(v) if isinstance(v, list) else v for v in changes.values()]
    cursor = await conn.execute(
        f"UPDATE agents SET {assignments}version = version + 1, updated_at = ?"
        f" WHERE id = ? AND version = ? AND {_LIVE}",
        (*values, now_iso(), agent_id, expected_version),
    )
    return cursor.rowcount == 1


async def insert_identity(
    conn: aiosqlite.Connection, agent_id: int, version: int, text: str, reason: str, actor: str
) -> None:
    await conn.execute(
        "INSERT INTO agent_identities (agent_id, version, text, reason, created_by, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (agent_id, version, text, reason, actor, now_iso()),
    )


async def identity_versions(db: Database, agent_id: int, page: PageParams) -> tuple[list[Row], int]:
    rows = await db.fetch_all(
        "SELECT version, text, reason, created_by, created_at FROM agent_identities"
        " WHERE agent_id = ? ORDER BY version DESC LIMIT ? OFFSET ?",
        (agent_id, page.limit, page.offset),
    )
    total = await db.fetch_one(
        "SELECT count(*) FROM agent_identities WHERE agent_id = ?", (agent_id,)
    )
    return rows, int(total[0]) if total else 0


async def identity_version(db: Database, agent_id: int, version: int) -> Row | None:
    return await db.fetch_one(
        "SELECT version, text, reason, created_by, created_at FROM agent_identities"
        " WHERE agent_id = ? AND version = ?",
        (agent_id, version),
    )


async def identity_version_tx(
    conn: aiosqlite.Connection, agent_id: int, version: int
) -> Row | None:
    async with conn.execute(
        "SELECT version, text FROM agent_identities WHERE agent_id = ? AND version = ?",
        (agent_id, version),
    ) as cursor:
        row: Row | None = await cursor.fetchone()
        return row


async def insert_memory(conn: aiosqlite.Connection, agent_id: int, content: str, actor: str) -> int:
    cursor = await conn.execute(
        "INSERT INTO agent_memory (agent_id, content, created_by, created_at) VALUES (?, ?, ?, ?)",
        (agent_id, content, actor, now_iso()),
    )
    return int(cursor.lastrowid or 0)


async def list_memory(db: Database, agent_id: int, page: PageParams) -> tuple[list[Row], int]:
    rows = await db.fetch_all(
        "SELECT id, agent_id, content, created_by, created_at FROM agent_memory"
        " WHERE agent_id = ? AND deleted_at IS NULL ORDER BY id DESC LIMIT ? OFFSET ?",
        (agent_id, page.limit, page.offset),
    )
    total = await db.fetch_one(
        "SELECT count(*) FROM agent_memory WHERE agent_id = ? AND deleted_at IS NULL", (agent_id,)
    )
    return rows, int(total[0]) if total else 0


async def live_memory_tx(conn: aiosqlite.Connection, agent_id: int) -> list[Row]:
    """Every live entry, oldest first (what a memory version holds)."""
    async with conn.execute(
        "SELECT id, content, created_by, created_at FROM agent_memory"
        " WHERE agent_id = ? AND deleted_at IS NULL ORDER BY id",
        (agent_id,),
    ) as cursor:
        return list(await cursor.fetchall())


async def soft_delete_memory(conn: aiosqlite.Connection, agent_id: int, memory_id: int) -> bool:
    cursor = await conn.execute(
        "UPDATE agent_memory SET deleted_at = ?"
        " WHERE id = ? AND agent_id = ? AND deleted_at IS NULL",
        (now_iso(), memory_id, agent_id),
    )
    return cursor.rowcount == 1
