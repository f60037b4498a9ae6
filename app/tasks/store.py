"""SQL for tasks, their dependencies, and the facts pre-flight validation reads.

Every query is parameterised. Reads that feed a decision take the write
transaction's connection, so the decision and the write see the same state.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import aiosqlite

from app.core.clock import now_iso
from app.core.database import Database, Row
from app.core.pagination import PageParams

TASK_COLUMNS = (
    "t.id, t.title, t.description, t.agent_id, t.mission_id, t.mission_step, t.project_id,"
    " t.priority, t.status, t.required_tools, t.needs_shell, t.due_at, t.idempotency_key,"
    " t.created_by, t.version, t.created_at, t.updated_at, t.approval, t.approved_by,"
    " (SELECT c.id FROM conversations c WHERE c.task_id = t.id"
    "  AND c.status IN ('QUEUED', 'IN_PROGRESS')) AS active_conversation_id"
)
_LIVE = "t.deleted_at IS NULL"


async def _one(conn: aiosqlite.Connection, sql: str, params: Iterable[Any]) -> Row | None:
    async with conn.execute(sql, tuple(params)) as cursor:
        row: Row | None = await cursor.fetchone()
        return row


async def _all(conn: aiosqlite.Connection, sql: str, params: Iterable[Any]) -> list[Row]:
    async with conn.execute(sql, tuple(params)) as cursor:
        return list(await cursor.fetchall())


def _marks(values: list[int]) -> str:
    return ",".join("?" for _ in values)


# --- tasks -------------------------------------------------------------------


async def insert_task(conn: aiosqlite.Connection, values: dict[str, Any]) -> int:
    now = now_iso()
    cursor = await conn.execute(
        "INSERT INTO tasks (title, description, agent_id, mission_id, mission_step, project_id,"
        " priority, status, required_tools, needs_shell, due_at, idempotency_key, created_by,"
        " follows_conversation_id, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            values["title"],
            values["description"],
            values["agent_id"],
            values["mission_id"],
            values["mission_step"],
            values["project_id"],
            values["priority"],
            json.dumps(values["required_tools"]),
            int(values["needs_shell"]),
            values["due_at"],
            values["idempotency_key"],
            values["created_by"],
            values.get("follows_conversation_id"),
            now,
            now,
        ),
    )
    return int(cursor.lastrowid or 0)


async def set_approval(
    conn: aiosqlite.Connection,
    task_id: int,
    approval: str,
    *,
    expected: str,
    version: int | None = None,
    approved_by: str | None = None,
) -> bool:
    """Move a task's approval (app/tasks/approval.py) from ``expected``; with
    ``version``, only at that version. False when the task was not as expected."""
    sql = "UPDATE tasks SET approval = ?, approved_by = ?, updated_at = ? WHERE id = ?"
    sql += " AND approval = ?"
    params: list[Any] = [approval, approved_by, now_iso(), task_id, expected]
    if version is not None:
        sql += " AND version = ?"
        params.append(version)
    cursor = await conn.execute(sql, params)
    return cursor.rowcount == 1


async def awaiting_approval(conn: aiosqlite.Connection, task_id: int) -> bool:
    """Whether the task waits for a person's approval (no run may be queued)."""
    row = await _one(conn, "SELECT approval FROM tasks WHERE id = ?", (task_id,))
    return row is not None and row[0] == "pending"


async def held_for_approval(db: Database, limit: int) -> tuple[list[Row], int]:
    """Open shell tasks that wait for a person's approval, newest first (at most
    ``limit``), and how many there are."""
    where = f"FROM tasks t WHERE {_LIVE} AND t.approval = 'pending' AND t.status = 'queued'"
    rows = await db.fetch_all(
        f"SELECT t.id, t.title, t.created_by, t.created_at {where} ORDER BY t.id DESC LIMIT ?",
        (limit,),
    )
    total = await db.fetch_all(f"SELECT count(*) {where}")
    return rows, int(total[0][0])


async def insert_dependencies(conn: aiosqlite.Connection, task_id: int, deps: list[int]) -> None:
    await conn.executemany(
        "INSERT INTO task_dependencies (task_id, depends_on) VALUES (?, ?)",
        [(task_id, dep) for dep in deps],
    )


async def task_row(db: Database, task_id: int) -> Row | None:
    return await db.fetch_one(
        f"SELECT {TASK_COLUMNS} FROM tasks t WHERE t.id = ? AND {_LIVE}", (task_id,)
    )


async def task_row_tx(conn: aiosqlite.Connection, task_id: int) -> Row | None:
    return await _one(
        conn, f"SELECT {TASK_COLUMNS} FROM tasks t WHERE t.id = ? AND {_LIVE}", (task_id,)
    )


async def task_by_key_tx(conn: aiosqlite.Connection, key: str) -> Row | None:
    return await _one(
        conn,
        f"SELECT {TASK_COLUMNS} FROM tasks t WHERE t.idempotency_key = ? AND {_LIVE}",
        (key,),
    )


def _list_filter(
    status: str | None, agent_id: int | None, mission_id: int | None
) -> tuple[str, str, list[str | int]]:
    """The task list's WHERE clause on ``tasks t``, the same on ``tasks n`` (the
    total's subquery) and its parameters."""
    where, params = _LIVE, []
    for column, value in (("status", status), ("agent_id", agent_id), ("mission_id", mission_id)):
        if value is not None:
            where += f" AND t.{column} = ?"
            params.append(value)
    return where, where.replace("t.", "n."), params


async def list_tasks(
    db: Database,
    page: PageParams,
    *,
    status: str | None,
    agent_id: int | None,
    mission_id: int | None,
) -> tuple[list[Row], int]:
    """One page, newest first, and the total, in one query read at once (a hot path:
    the task list): the total is an uncorrelated subquery (evaluated once) and each
    row carries its dependencies as ``depends_on_json``."""
    where, counted, params = _list_filter(status, agent_id, mission_id)
    rows = await db.fetch_all_quick(
        f"SELECT {TASK_COLUMNS},"
        " (SELECT json_group_array(d.depends_on) FROM task_dependencies d"
        "  WHERE d.task_id = t.id) AS depends_on_json,"
        f" (SELECT count(*) FROM tasks n WHERE {counted}) AS total_rows"
        f" FROM tasks t WHERE {where} ORDER BY t.id DESC LIMIT ? OFFSET ?",
        (*params, *params, page.limit, page.offset),
    )
    if rows:
        return rows, int(rows[0]["total_rows"])
    total = await db.fetch_one(f"SELECT count(*) FROM tasks t WHERE {where}", params)
    return rows, int(total[0]) if total else 0


# The task list as JSON built by SQLite itself (a hot path: ``GET /api/tasks``): the
# same bytes as ``Page[TaskView]`` serialised by pydantic, without building a Row, a
# dict and a model per task (tests/api/test_tasks_list_json.py compares the two).
# Every column is constrained by the schema (CHECKs on priority, status, needs_shell;
# required_tools is written by ``json.dumps``), so there is nothing to coerce.
_TASK_JSON = (
    "json_object('id', t.id, 'title', t.title, 'description', t.description,"
    " 'agent_id', t.agent_id, 'mission_id', t.mission_id, 'mission_step', t.mission_step,"
    " 'project_id', t.project_id, 'priority', t.priority, 'status', t.status,"
    " 'required_tools', json(t.required_tools),"
    " 'needs_shell', json(CASE WHEN t.needs_shell THEN 'true' ELSE 'false' END),"
    " 'due_at', t.due_at, 'idempotency_key', t.idempotency_key,"
    # json(): a JSON value read from a subquery is text again in some SQLite versions
    " 'depends_on', json((SELECT json_group_array(x.depends_on) FROM (SELECT d.depends_on"
    "  FROM task_dependencies d WHERE d.task_id = t.id ORDER BY d.depends_on) x)),"
    " 'active_conversation_id', (SELECT c.id FROM conversations c WHERE c.task_id = t.id"
    "  AND c.status IN ('QUEUED', 'IN_PROGRESS')),"
    " 'created_by', t.created_by, 'version', t.version, 'created_at', t.created_at,"
    " 'updated_at', t.updated_at, 'approval', t.approval, 'approved_by', t.approved_by)"
)


async def list_tasks_json(
    db: Database,
    page: PageParams,
    *,
    status: str | None,
    agent_id: int | None,
    mission_id: int | None,
) -> tuple[str, int, int]:
    """One page of :func:`list_tasks` as a JSON array of task views, newest first,
    with the number of items in it and the total, in one query read at once."""
    where, counted, params = _list_filter(status, agent_id, mission_id)
    # the page is a subquery with a LIMIT, which SQLite never flattens into the
    # aggregate: json_group_array sees its rows in the subquery's order
    row = await db.fetch_one_quick(
        f"SELECT json_group_array({_TASK_JSON}), count(*),"
        f" (SELECT count(*) FROM tasks n WHERE {counted})"
        f" FROM (SELECT * FROM tasks t WHERE {where} ORDER BY t.id DESC LIMIT ? OFFSET ?) t",
        (*params, *params, page.limit, page.offset),
    )
    if row is None:  # an aggregate always answers one row
        return "[]", 0, 0
    return str(row[0]), int(row[1]), int(row[2])


async def dependencies_of(db: Database, task_ids: list[int]) -> dict[int, list[int]]:
    if not task_ids:
        return {}
    rows = await db.fetch_all(
        f"SELECT task_id, depends_on FROM task_dependencies WHERE task_id IN ({_marks(task_ids)})"
        " ORDER BY task_id, depends_on",
        task_ids,
    )
    found: dict[int, list[int]] = {tid: [] for tid in task_ids}
    for row in rows:
        found[int(row[0])].append(int(row[1]))
    return found


async def dependencies_of_tx(conn: aiosqlite.Connection, task_id: int) -> list[int]:
    rows = await _all(
        conn,
        "SELECT depends_on FROM task_dependencies WHERE task_id = ? ORDER BY depends_on",
        (task_id,),
    )
    return [int(r[0]) for r in rows]


UPDATABLE = {"title", "description", "priority", "due_at"}


async def update_task(
    conn: aiosqlite.Connection, task_id: int, expected_version: int, changes: dict[str, Any]
) -> bool:
    """Apply ``changes`` if the task is still at ``expected_version`` (else False)."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    assignments = "".join(f"{column} = ?, " for column in changes)
    cursor = await conn.execute(
        f"UPDATE tasks SET {assignments}version = version + 1, updated_at = ?"
        " WHERE id = ? AND version = ? AND deleted_at IS NULL",
        (*changes.values(), now_iso(), task_id, expected_version),
    )
    return cursor.rowcount == 1


async def set_status(
    conn: aiosqlite.Connection, task_id: int, from_status: str, to_status: str
) -> bool:
    cursor = await conn.execute(
        "UPDATE tasks SET status = ?, version = version + 1, updated_at = ?"
        " WHERE id = ? AND status = ? AND deleted_at IS NULL",
        (to_status, now_iso(), task_id, from_status),
    )
    return cursor.rowcount == 1


async def soft_delete(conn: aiosqlite.Connection, task_id: int) -> bool:
    now = now_iso()
    cursor = await conn.execute(
        "UPDATE tasks SET deleted_at = ?, version = version + 1, updated_at = ?"
        " WHERE id = ? AND deleted_at IS NULL AND status != 'in_progress'",
        (now, now, task_id),
    )
    return cursor.rowcount == 1


async def dependents_tx(conn: aiosqlite.Connection, task_id: int) -> list[Row]:
    """Live tasks that depend on ``task_id``."""
    return await _all(
        conn,
        "SELECT t.id, t.agent_id, t.status FROM task_dependencies d JOIN tasks t"
        " ON t.id = d.task_id WHERE d.depends_on = ? AND t.deleted_at IS NULL ORDER BY t.id",
        (task_id,),
    )


async def unmet_dependency_count(conn: aiosqlite.Connection, task_id: int) -> int:
    """Dependencies not (or no longer) succeeded; a deleted dependency is unmet."""
    row = await _one(
        conn,
        "SELECT count(*) FROM task_dependencies d JOIN tasks t ON t.id = d.depends_on"
        " WHERE d.task_id = ? AND (t.status != 'succeeded' OR t.deleted_at IS NOT NULL)",
        (task_id,),
    )
    return int(row[0]) if row else 0


async def open_mission_tasks(conn: aiosqlite.Connection, mission_id: int) -> list[Row]:
    return await _all(
        conn,
        "SELECT id, status FROM tasks WHERE mission_id = ? AND deleted_at IS NULL"
        " AND status IN ('queued', 'blocked', 'in_progress') ORDER BY id",
        (mission_id,),
    )


# --- facts for pre-flight validation ----------------------------------------


async def usage_on_day(conn: aiosqlite.Connection, agent_id: int, day: str) -> tuple[int, float]:
    row = await _one(
        conn,
        "SELECT coalesce(sum(tokens), 0), coalesce(sum(cost_usd), 0) FROM usage_ledger"
        " WHERE agent_id = ? AND day = ?",
        (agent_id, day),
    )
    return (int(row[0]), float(row[1])) if row else (0, 0.0)


async def runs_since(conn: aiosqlite.Connection, agent_id: int, since_iso: str) -> int:
    row = await _one(
        conn,
        "SELECT count(*) FROM conversations WHERE agent_id = ? AND created_at >= ?",
        (agent_id, since_iso),
    )
    return int(row[0]) if row else 0


async def worker_states_since(conn: aiosqlite.Connection, since_iso: str) -> list[str]:
    rows = await _all(conn, "SELECT state FROM worker_heartbeats WHERE seen_at >= ?", (since_iso,))
    return [str(r[0]) for r in rows]


async def project_exists(conn: aiosqlite.Connection, project_id: int) -> bool:
    row = await _one(
        conn, "SELECT 1 FROM projects WHERE id = ? AND deleted_at IS NULL", (project_id,)
    )
    return row is not None


async def task_statuses(conn: aiosqlite.Connection, task_ids: list[int]) -> dict[int, str]:
    if not task_ids:
        return {}
    rows = await _all(
        conn,
        f"SELECT id, status FROM tasks WHERE id IN ({_marks(task_ids)}) AND deleted_at IS NULL",
        task_ids,
    )
    return {int(r[0]): str(r[1]) for r in rows}


async def dependency_edges(
    conn: aiosqlite.Connection, task_ids: list[int]
) -> list[tuple[int, int]]:
    if not task_ids:
        return []
    rows = await _all(
        conn,
        f"SELECT task_id, depends_on FROM task_dependencies WHERE task_id IN ({_marks(task_ids)})",
        task_ids,
    )
    return [(int(r[0]), int(r[1])) for r in rows]
