"""Read-only SQL behind the UI's overview pages (every query parameterised).

The domain stores answer one domain each; the dashboard wants a row per agent
with its spend today and its current run, which is one query here rather than
one request per agent.
"""

from __future__ import annotations

from datetime import datetime

from app.core.clock import iso
from app.core.database import Database, Row
from app.core.pagination import PageParams
from app.escalations.store import ESCALATION_COLUMNS


def utc_day(moment: datetime) -> str:
    return moment.date().isoformat()


def utc_midnight(moment: datetime) -> str:
    return iso(moment.replace(hour=0, minute=0, second=0, microsecond=0))


_AGENT_TODAY = """
SELECT a.id, a.name, a.role, a.model, a.status, a.profile, a.shell_access, a.allowed_tools,
       a.quota_tokens_per_day, a.quota_cost_usd_per_day, a.quota_runs_per_day,
       (SELECT coalesce(sum(u.tokens), 0) FROM usage_ledger u
         WHERE u.agent_id = a.id AND u.day = ?) AS tokens_today,
       (SELECT coalesce(sum(u.cost_usd), 0) FROM usage_ledger u
         WHERE u.agent_id = a.id AND u.day = ?) AS cost_today,
       (SELECT count(*) FROM conversations c
         WHERE c.agent_id = a.id AND c.started_at >= ?) AS runs_today,
       (SELECT count(*) FROM conversations c
         WHERE c.agent_id = a.id AND c.status = 'QUEUED') AS queued_runs,
       (SELECT c.id FROM conversations c
         WHERE c.agent_id = a.id AND c.status = 'IN_PROGRESS' ORDER BY c.id DESC LIMIT 1)
         AS running_conversation_id,
       (SELECT t.title FROM conversations c JOIN tasks t ON t.id = c.task_id
         WHERE c.agent_id = a.id AND c.status = 'IN_PROGRESS' ORDER BY c.id DESC LIMIT 1)
         AS running_task_title
  FROM agents a
 WHERE a.deleted_at IS NULL
"""


async def agents_today(db: Database, page: PageParams, now: datetime) -> tuple[list[Row], int]:
    """Live agents with their spend today (UTC day) and what each is running."""
    day, midnight = utc_day(now), utc_midnight(now)
    rows = await db.fetch_all(
        _AGENT_TODAY + " ORDER BY a.name COLLATE NOCASE, a.id LIMIT ? OFFSET ?",
        (day, day, midnight, page.limit, page.offset),
    )
    total = await db.fetch_one("SELECT count(*) FROM agents WHERE deleted_at IS NULL")
    return rows, int(total[0]) if total else 0


async def agent_today(db: Database, agent_id: int, now: datetime) -> Row | None:
    day, midnight = utc_day(now), utc_midnight(now)
    return await db.fetch_one(_AGENT_TODAY + " AND a.id = ?", (day, day, midnight, agent_id))


async def spend_today(db: Database, now: datetime) -> tuple[int, float, int]:
    """Tokens, cost and runs of every agent today (UTC)."""
    ledger = await db.fetch_one(
        "SELECT coalesce(sum(tokens), 0), coalesce(sum(cost_usd), 0) FROM usage_ledger"
        " WHERE day = ?",
        (utc_day(now),),
    )
    runs = await db.fetch_one(
        "SELECT count(*) FROM conversations WHERE started_at >= ?", (utc_midnight(now),)
    )
    return (
        int(ledger[0]) if ledger else 0,
        float(ledger[1]) if ledger else 0.0,
        int(runs[0]) if runs else 0,
    )


async def active_runs(db: Database, page: PageParams) -> tuple[list[Row], int]:
    """Queued and running conversations with their task and agent, running first."""
    rows = await db.fetch_all(
        "SELECT c.id, c.status, c.task_id, c.agent_id, c.attempt, c.started_at, c.created_at,"
        " c.heartbeat_at, t.title AS task_title, a.name AS agent_name"
        " FROM conversations c JOIN tasks t ON t.id = c.task_id"
        " JOIN agents a ON a.id = c.agent_id"
        " WHERE c.status IN ('QUEUED', 'IN_PROGRESS')"
        " ORDER BY CASE c.status WHEN 'IN_PROGRESS' THEN 0 ELSE 1 END, c.id DESC"
        " LIMIT ? OFFSET ?",
        (page.limit, page.offset),
    )
    total = await db.fetch_one(
        "SELECT count(*) FROM conversations WHERE status IN ('QUEUED', 'IN_PROGRESS')"
    )
    return rows, int(total[0]) if total else 0


async def task_counts(db: Database) -> dict[str, int]:
    rows = await db.fetch_all(
        "SELECT status, count(*) FROM tasks WHERE deleted_at IS NULL GROUP BY status"
    )
    return {str(r[0]): int(r[1]) for r in rows}


async def agent_names(db: Database, limit: int = 200) -> dict[int, str]:
    """Live agents by id, for labels and form choices (bounded)."""
    rows = await db.fetch_all(
        "SELECT id, name FROM agents WHERE deleted_at IS NULL ORDER BY name COLLATE NOCASE LIMIT ?",
        (limit,),
    )
    return {int(r[0]): str(r[1]) for r in rows}


async def active_agent_choices(db: Database, limit: int = 200) -> list[Row]:
    return await db.fetch_all(
        "SELECT id, name, profile, shell_access, allowed_tools FROM agents"
        " WHERE deleted_at IS NULL AND status = 'active' ORDER BY name COLLATE NOCASE LIMIT ?",
        (limit,),
    )


async def open_mission_choices(db: Database, limit: int = 200) -> list[Row]:
    return await db.fetch_all(
        "SELECT id, title, status FROM missions WHERE deleted_at IS NULL"
        " AND status IN ('approved', 'running') ORDER BY id DESC LIMIT ?",
        (limit,),
    )


async def project_choices(db: Database, limit: int = 200) -> list[Row]:
    return await db.fetch_all(
        "SELECT id, name FROM projects WHERE deleted_at IS NULL ORDER BY name COLLATE NOCASE"
        " LIMIT ?",
        (limit,),
    )


async def mission_tasks(db: Database, mission_id: int, limit: int = 200) -> list[Row]:
    return await db.fetch_all(
        "SELECT id, title, status, approval, mission_step, agent_id FROM tasks"
        " WHERE mission_id = ? AND deleted_at IS NULL ORDER BY mission_step, id LIMIT ?",
        (mission_id, limit),
    )


async def unresolved_escalations(db: Database, page: PageParams) -> tuple[list[Row], int]:
    """Open and acknowledged escalations (both still need a human), newest first."""
    rows = await db.fetch_all(
        f"SELECT {ESCALATION_COLUMNS} FROM escalations WHERE status IN ('open', 'acknowledged')"
        " ORDER BY id DESC LIMIT ? OFFSET ?",
        (page.limit, page.offset),
    )
    total = await db.fetch_one(
        "SELECT count(*) FROM escalations WHERE status IN ('open', 'acknowledged')"
    )
    return rows, int(total[0]) if total else 0


async def run_started_event(db: Database, conversation_id: int) -> int:
    """The id of the event that started this run (0: none): the run page's live
    output replays what came after it."""
    row = await db.fetch_one(
        "SELECT max(id) FROM events WHERE type = 'conversation.started'"
        " AND subject_type = 'conversation' AND subject_id = ?",
        (conversation_id,),
    )
    return int(row[0]) if row is not None and row[0] is not None else 0


async def password_unchanged(db: Database, user_id: int | None) -> bool:
    """The user still has the password they were given (never changed it themselves)."""
    if user_id is None:
        return False
    row = await db.fetch_one(
        "SELECT password_changed_at = created_at FROM users WHERE id = ?", (user_id,)
    )
    return bool(row and row[0])
