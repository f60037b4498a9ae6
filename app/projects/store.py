"""SQL for projects and their documents."""

from __future__ import annotations

import aiosqlite

from app.core.clock import now_iso
from app.core.database import Database, Row
from app.core.pagination import PageParams

PROJECT_COLUMNS = "id, name, description, version, created_at, updated_at"
DOCUMENT_COLUMNS = "id, project_id, title, body, created_by, created_at, updated_at"


async def project_row(db: Database, project_id: int) -> Row | None:
    return await db.fetch_one(
        f"SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ? AND deleted_at IS NULL",
        (project_id,),
    )


async def list_projects(db: Database, page: PageParams) -> tuple[list[Row], int]:
    rows = await db.fetch_all(
        f"SELECT {PROJECT_COLUMNS} FROM projects WHERE deleted_at IS NULL"
        " ORDER BY id LIMIT ? OFFSET ?",
        (page.limit, page.offset),
    )
    total = await db.fetch_one("SELECT count(*) FROM projects WHERE deleted_at IS NULL")
    return rows, int(total[0]) if total else 0


async def insert_project(conn: aiosqlite.Connection, name: str, description: str) -> int:
    now = now_iso()
    cursor = await conn.execute(
        "INSERT INTO projects (name, description, created_at, updated_at) VALUES (?, ?, ?, ?)",
        (name, description, now, now),
    )
    return int(cursor.lastrowid or 0)


async def update_project(
    conn: aiosqlite.Connection,
    project_id: int,
    expected_version: int,
    name: str | None,
    description: str | None,
) -> bool:
    cursor = await conn.execute(
        "UPDATE projects SET name = coalesce(?, name), description = coalesce(?, description),"
        " version = version + 1, updated_at = ?"
        " WHERE id = ? AND version = ? AND deleted_at IS NULL",
        (name, description, now_iso(), project_id, expected_version),
    )
    return cursor.rowcount == 1


async def soft_delete_project(conn: aiosqlite.Connection, project_id: int) -> bool:
    cursor = await conn.execute(
        "UPDATE projects SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
        (now_iso(), project_id),
    )
    return cursor.rowcount == 1


async def insert_document(
    conn: aiosqlite.Connection, project_id: int, title: str, body: str, actor: str | None = None
) -> int:
    now = now_iso()
    cursor = await conn.execute(
        "INSERT INTO project_documents (project_id, title, body, created_at, updated_at,"
        " created_by) VALUES (?, ?, ?, ?, ?, ?)",
        (project_id, title, body, now, now, actor),
    )
    return int(cursor.lastrowid or 0)


async def list_documents(db: Database, project_id: int, page: PageParams) -> tuple[list[Row], int]:
    rows = await db.fetch_all(
        f"SELECT {DOCUMENT_COLUMNS} FROM project_documents"
        " WHERE project_id = ? AND deleted_at IS NULL ORDER BY id LIMIT ? OFFSET ?",
        (project_id, page.limit, page.offset),
    )
    total = await db.fetch_one(
        "SELECT count(*) FROM project_documents WHERE project_id = ? AND deleted_at IS NULL",
        (project_id,),
    )
    return rows, int(total[0]) if total else 0


async def document_row(db: Database, document_id: int) -> Row | None:
    return await db.fetch_one(
        f"SELECT {DOCUMENT_COLUMNS} FROM project_documents WHERE id = ? AND deleted_at IS NULL",
        (document_id,),
    )


async def soft_delete_document(
    conn: aiosqlite.Connection, project_id: int, document_id: int
) -> bool:
    cursor = await conn.execute(
        "UPDATE project_documents SET deleted_at = ?"
        " WHERE id = ? AND project_id = ? AND deleted_at IS NULL",
        (now_iso(), document_id, project_id),
    )
    return cursor.rowcount == 1


async def shell_agent_rows(db: Database, project_id: int) -> list[Row]:
    """The agents that have (had) tasks in the project: its documents reach their prompts."""
    return await db.fetch_all(
        "SELECT * FROM agents WHERE deleted_at IS NULL AND id IN (SELECT DISTINCT agent_id"
        " FROM tasks WHERE project_id = ? AND deleted_at IS NULL)",
        (project_id,),
    )


async def context_documents(db: Database, project_id: int, limit: int = 50) -> list[Row]:
    """The documents an agent loads as project context (newest last)."""
    return await db.fetch_all(
        "SELECT title, body, created_by, updated_at FROM project_documents"
        " WHERE project_id = ? AND deleted_at IS NULL ORDER BY id LIMIT ?",
        (project_id, limit),
    )


async def live_documents_tx(conn: aiosqlite.Connection, project_id: int) -> list[Row]:
    """Every live document, oldest first (what a documents version holds)."""
    async with conn.execute(
        "SELECT id, title, body, created_by, created_at FROM project_documents"
        " WHERE project_id = ? AND deleted_at IS NULL ORDER BY id",
        (project_id,),
    ) as cursor:
        return list(await cursor.fetchall())
