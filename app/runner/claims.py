"""Which conversation the worker claims next, and what its run needs to know (F11, F29).

:func:`next_candidate` reads inside the caller's write transaction (``BEGIN
IMMEDIATE``, see :func:`app.events.transaction.transaction`), so the read that
picks a row and the claim that changes it see one state of the database, and two
workers are serialised by SQLite itself. The worker writes no rows here: a run
moves through :mod:`app.conversations.lifecycle` (claim, lease, end; every
UPDATE conditional on the state it expects), its task through
:mod:`app.tasks.transitions` (``start``, ``run_ended``), its mission through
:mod:`app.missions.lifecycle`. The unique partial index
``conversations_one_active`` adds one QUEUED/IN_PROGRESS conversation per task.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiosqlite

from app.core.database import Row

#: a conversation interrupted by a worker restart is re-queued while attempt < this
MAX_ATTEMPTS_AFTER_RESTART = 2
#: statuses of a task whose queued conversation may be claimed
CLAIMABLE_TASK_STATUSES = ("queued", "in_progress")


@dataclass(frozen=True, slots=True)
class Claim:
    """A conversation picked for a run, with what the run needs to know."""

    conversation_id: int
    task_id: int
    agent_id: int
    #: the attempt number of this run (already incremented)
    attempt: int
    task_status: str
    title: str
    description: str
    #: the mission whose bounds the run counts against: its task's, or for a review
    #: task the reviewed work's (docs/missions.md, "Review gate"); a review task is
    #: no step of it (its own ``mission_step`` and ``tasks.mission_id`` stay empty)
    mission_id: int | None
    mission_step: int | None
    project_id: int | None
    profile: str
    model: str
    identity_version: int
    quota_tokens_per_day: int
    quota_cost_usd_per_day: float
    quota_runs_per_day: int
    #: the agent's stored tools and shell flag, the task's declared need: the
    #: inputs of the run's capability (app/capability/model.py)
    shell_access: bool = False
    allowed_tools: tuple[str, ...] = ()
    needs_shell: bool = False
    #: a follow-up: the session to resume (the earlier run's, same agent) and its run
    resume_session_id: str | None = None
    follows_conversation_id: int | None = None

    @classmethod
    def from_row(cls, row: Row) -> Claim:
        return cls(
            conversation_id=int(row["id"]),
            task_id=int(row["task_id"]),
            agent_id=int(row["agent_id"]),
            attempt=int(row["attempt"]) + 1,
            task_status=str(row["task_status"]),
            title=str(row["title"]),
            description=str(row["description"]),
            mission_id=_int_or_none(row["mission_id"]),
            mission_step=_int_or_none(row["mission_step"]),
            project_id=_int_or_none(row["project_id"]),
            profile=str(row["profile"]),
            model=str(row["model"]),
            identity_version=int(row["identity_version"]),
            quota_tokens_per_day=int(row["quota_tokens_per_day"]),
            quota_cost_usd_per_day=float(row["quota_cost_usd_per_day"]),
            quota_runs_per_day=int(row["quota_runs_per_day"]),
            shell_access=bool(row["shell_access"]),
            allowed_tools=_tools(row["allowed_tools"]),
            needs_shell=bool(row["needs_shell"]),
            resume_session_id=_str_or_none(row["resume_session_id"]),
            follows_conversation_id=_int_or_none(row["follows_conversation_id"]),
        )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _tools(value: Any) -> tuple[str, ...]:
    try:
        parsed = json.loads(value or "[]")
    except (TypeError, ValueError):
        return ()
    return tuple(str(v) for v in parsed) if isinstance(parsed, list) else ()


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


async def _one(conn: aiosqlite.Connection, sql: str, params: Iterable[Any]) -> Row | None:
    async with conn.execute(sql, tuple(params)) as cursor:
        row: Row | None = await cursor.fetchone()
        return row


# --------------------------------------------------------------------------- claiming

_CANDIDATE_SQL = (
    "SELECT c.id, c.task_id, c.agent_id, c.attempt, t.status AS task_status, t.title,"
    " t.description, coalesce(t.mission_id, (SELECT w.mission_id FROM tasks w"
    "  WHERE w.id = t.reviews_task_id)) AS mission_id, t.mission_step, t.project_id,"
    " a.profile, a.model,"
    " a.identity_version, a.quota_tokens_per_day, a.quota_cost_usd_per_day,"
    " a.quota_runs_per_day, a.shell_access, a.allowed_tools, t.needs_shell,"
    " t.follows_conversation_id,"
    " (SELECT f.session_id FROM conversations f WHERE f.id = t.follows_conversation_id"
    "  AND f.agent_id = c.agent_id) AS resume_session_id"
    " FROM conversations c JOIN tasks t ON t.id = c.task_id JOIN agents a ON a.id = c.agent_id"
    " WHERE c.status = 'QUEUED' AND t.deleted_at IS NULL AND t.status IN ('queued', 'in_progress')"
    " AND a.deleted_at IS NULL AND a.status = 'active'"
    " ORDER BY c.id LIMIT 1"
)


async def next_candidate(conn: aiosqlite.Connection) -> Claim | None:
    """The oldest QUEUED conversation whose task is live and whose agent is active."""
    row = await _one(conn, _CANDIDATE_SQL, ())
    return None if row is None else Claim.from_row(row)
