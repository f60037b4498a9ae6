"""SQL of the review gate (docs/missions.md, "Review gate"). Parameterised; the
functions taking a connection run inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiosqlite

from app.core.clock import now_iso
from app.core.database import Database, Row

OPEN_STATES = ("with_agent", "with_human")


@dataclass(frozen=True, slots=True)
class ReviewSettings:
    task_id: int
    title: str
    agent_id: int
    project_id: int | None
    priority: str
    mission_id: int | None
    reviewer_agent_id: int | None
    human: bool
    max_cycles: int

    @property
    def required(self) -> bool:
        return self.reviewer_agent_id is not None or self.human


async def _one(conn: aiosqlite.Connection, sql: str, params: Iterable[Any]) -> Row | None:
    async with conn.execute(sql, tuple(params)) as cursor:
        row: Row | None = await cursor.fetchone()
        return row


async def _all(conn: aiosqlite.Connection, sql: str, params: Iterable[Any]) -> list[Row]:
    async with conn.execute(sql, tuple(params)) as cursor:
        return list(await cursor.fetchall())


async def settings(conn: aiosqlite.Connection, task_id: int) -> ReviewSettings | None:
    """The review settings of a live task (None: no such task)."""
    row = await _one(
        conn,
        "SELECT id, title, agent_id, project_id, priority, mission_id, review_agent_id,"
        " review_human, review_max_cycles FROM tasks WHERE id = ? AND deleted_at IS NULL",
        (task_id,),
    )
    if row is None:
        return None
    return ReviewSettings(
        task_id=int(row["id"]),
        title=str(row["title"]),
        agent_id=int(row["agent_id"]),
        project_id=None if row["project_id"] is None else int(row["project_id"]),
        priority=str(row["priority"]),
        mission_id=None if row["mission_id"] is None else int(row["mission_id"]),
        reviewer_agent_id=None if row["review_agent_id"] is None else int(row["review_agent_id"]),
        human=bool(row["review_human"]),
        max_cycles=int(row["review_max_cycles"]),
    )


async def set_settings(
    conn: aiosqlite.Connection,
    task_id: int,
    *,
    reviewer_agent_id: int | None,
    human: bool,
    max_cycles: int,
) -> None:
    await conn.execute(
        "UPDATE tasks SET review_agent_id = ?, review_human = ?, review_max_cycles = ?"
        " WHERE id = ?",
        (reviewer_agent_id, int(human), max_cycles, task_id),
    )


async def mark_review_task(conn: aiosqlite.Connection, review_task_id: int, work_id: int) -> None:
    await conn.execute(
        "UPDATE tasks SET reviews_task_id = ? WHERE id = ?", (work_id, review_task_id)
    )


async def needs_review(db: Database, task_id: int) -> bool:
    row = await db.fetch_one(
        "SELECT review_agent_id IS NOT NULL OR review_human FROM tasks WHERE id = ?", (task_id,)
    )
    return bool(row and row[0])


async def needs_review_tx(conn: aiosqlite.Connection, task_id: int) -> bool:
    row = await _one(
        conn,
        "SELECT review_agent_id IS NOT NULL OR review_human FROM tasks WHERE id = ?",
        (task_id,),
    )
    return bool(row and row[0])


async def reviewed_work(db: Database, task_id: int) -> int | None:
    """The work task a review task reviews (None for any other task)."""
    row = await db.fetch_one("SELECT reviews_task_id FROM tasks WHERE id = ?", (task_id,))
    return None if row is None or row[0] is None else int(row[0])


async def last_cycle(conn: aiosqlite.Connection, task_id: int) -> int:
    row = await _one(
        conn, "SELECT coalesce(max(cycle), 0) FROM task_reviews WHERE task_id = ?", (task_id,)
    )
    return int(row[0]) if row else 0


async def insert_review(
    conn: aiosqlite.Connection,
    *,
    task_id: int,
    cycle: int,
    work_conversation_id: int,
    diff: str,
    state: str,
) -> int:
    now = now_iso()
    cursor = await conn.execute(
        "INSERT INTO task_reviews (task_id, cycle, work_conversation_id, diff, state,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (task_id, cycle, work_conversation_id, diff, state, now, now),
    )
    return int(cursor.lastrowid or 0)


async def set_review_task(conn: aiosqlite.Connection, review_id: int, review_task_id: int) -> None:
    await conn.execute(
        "UPDATE task_reviews SET review_task_id = ?, updated_at = ? WHERE id = ?",
        (review_task_id, now_iso(), review_id),
    )


async def move_state(
    conn: aiosqlite.Connection, review_id: int, from_state: str, to_state: str
) -> bool:
    cursor = await conn.execute(
        "UPDATE task_reviews SET state = ?, updated_at = ? WHERE id = ? AND state = ?",
        (to_state, now_iso(), review_id, from_state),
    )
    return cursor.rowcount == 1


async def close_open(conn: aiosqlite.Connection, task_id: int) -> int:
    """Close the open review of a task that ended otherwise (cancelled, failed)."""
    cursor = await conn.execute(
        "UPDATE task_reviews SET state = 'closed', updated_at = ?"
        " WHERE task_id = ? AND state IN ('with_agent', 'with_human')",
        (now_iso(), task_id),
    )
    return cursor.rowcount


async def by_review_task(conn: aiosqlite.Connection, review_task_id: int) -> Row | None:
    return await _one(
        conn,
        "SELECT id, task_id, cycle, state, work_conversation_id FROM task_reviews"
        " WHERE review_task_id = ?",
        (review_task_id,),
    )


async def open_review(conn: aiosqlite.Connection, task_id: int) -> Row | None:
    return await _one(
        conn,
        "SELECT id, task_id, cycle, state, work_conversation_id, review_task_id"
        " FROM task_reviews WHERE task_id = ? AND state IN ('with_agent', 'with_human')"
        " ORDER BY id DESC LIMIT 1",
        (task_id,),
    )


async def insert_verdict(
    conn: aiosqlite.Connection,
    *,
    review_id: int,
    task_id: int,
    cycle: int,
    reviewer_kind: str,
    reviewer: str,
    agent_id: int | None,
    verdict: str,
    reasons: str,
    conversation_id: int | None,
) -> int:
    cursor = await conn.execute(
        "INSERT INTO review_verdicts (review_id, task_id, cycle, reviewer_kind, reviewer,"
        " agent_id, verdict, reasons, conversation_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            review_id,
            task_id,
            cycle,
            reviewer_kind,
            reviewer,
            agent_id,
            verdict,
            reasons,
            conversation_id,
            now_iso(),
        ),
    )
    return int(cursor.lastrowid or 0)


async def latest_transcript(
    conn: aiosqlite.Connection, task_id: int
) -> tuple[int, str, bool] | None:
    """(conversation id, transcript, truncated) of the task's latest succeeded run."""
    row = await _one(
        conn,
        "SELECT id, transcript, truncated FROM conversations WHERE task_id = ?"
        " AND status = 'SUCCEEDED' ORDER BY id DESC LIMIT 1",
        (task_id,),
    )
    if row is None:
        return None
    return int(row[0]), str(row[1] or ""), bool(row[2])


async def agent_name(conn: aiosqlite.Connection, agent_id: int) -> str:
    row = await _one(conn, "SELECT name FROM agents WHERE id = ?", (agent_id,))
    return f"agent {row[0]}" if row else f"agent #{agent_id}"


# --- what the prompts and the pages read ------------------------------------------------


async def material_for_review_task(db: Database, review_task_id: int) -> Row | None:
    """What a review run is shown: the work task, its final result and the diff."""
    return await db.fetch_one(
        "SELECT r.cycle, r.diff, w.id AS work_id, w.title, w.description, w.created_by,"
        " c.id AS conversation_id, c.transcript, c.finished_at, a.name AS agent_name"
        " FROM task_reviews r JOIN tasks w ON w.id = r.task_id"
        " JOIN conversations c ON c.id = r.work_conversation_id"
        " JOIN agents a ON a.id = c.agent_id WHERE r.review_task_id = ?",
        (review_task_id,),
    )


async def feedback_for_rework(db: Database, task_id: int) -> list[Row]:
    """The reasons of the verdicts that sent the work back, when its latest review
    asked for changes (what the next run of the work is told)."""
    return await db.fetch_all(
        "SELECT v.cycle, v.reviewer_kind, v.reviewer, v.reasons, v.created_at"
        " FROM review_verdicts v WHERE v.review_id = (SELECT r.id FROM task_reviews r"
        "  WHERE r.task_id = ? ORDER BY r.cycle DESC LIMIT 1)"
        " AND v.verdict = 'request_changes'"
        " AND (SELECT r.state FROM task_reviews r WHERE r.task_id = ?"
        "  ORDER BY r.cycle DESC LIMIT 1) = 'changes_requested' ORDER BY v.id",
        (task_id, task_id),
    )


async def reviews_of(db: Database, task_id: int) -> list[Row]:
    return await db.fetch_all(
        "SELECT id, cycle, state, work_conversation_id, review_task_id, length(diff) AS diff_chars,"
        " diff, created_at, updated_at FROM task_reviews WHERE task_id = ? ORDER BY cycle",
        (task_id,),
    )


async def verdicts_of(db: Database, task_id: int) -> list[Row]:
    return await db.fetch_all(
        "SELECT id, review_id, cycle, reviewer_kind, reviewer, agent_id, verdict, reasons,"
        " conversation_id, created_at FROM review_verdicts WHERE task_id = ? ORDER BY id",
        (task_id,),
    )


async def verdicts_for_conversation(db: Database, conversation_id: int) -> list[Row]:
    """Verdicts given by a review run, or on the work of a run under review."""
    return await db.fetch_all(
        "SELECT v.id, v.task_id, v.cycle, v.reviewer_kind, v.reviewer, v.verdict, v.reasons,"
        " v.conversation_id, v.created_at FROM review_verdicts v"
        " JOIN task_reviews r ON r.id = v.review_id"
        " WHERE v.conversation_id = ? OR r.work_conversation_id = ?"
        " ORDER BY v.id",
        (conversation_id, conversation_id),
    )
