"""Conversation and task state changes made by the worker (F11, F29).

Every function runs inside the caller's write transaction (``BEGIN IMMEDIATE``,
see :func:`app.events.transaction.transaction`), so the read that picks a row and
the write that changes it see one state of the database, and two workers are
serialised by SQLite itself. Every UPDATE is also conditional on the state it
expects (``... WHERE id = ? AND status = 'QUEUED'``) and its rowcount is checked:
a second claim of one conversation changes nothing. The unique partial index
``conversations_one_active`` adds one QUEUED/IN_PROGRESS conversation per task.

Task transitions made here: queued -> in_progress (claim), in_progress ->
succeeded/failed (end of a run), queued/in_progress -> failed (a refused run),
queued -> blocked (a dependency failed). Each emits ``task.status_changed``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiosqlite

from app.conversations import store as conversation_store
from app.core.clock import iso, now_iso, utcnow
from app.core.database import Row
from app.events.transaction import Tx
from app.events.types import EventType
from app.tasks import store as task_store

#: a conversation interrupted by a worker restart is re-queued while attempt < this
MAX_ATTEMPTS_AFTER_RESTART = 2
#: statuses of a task whose queued conversation may be claimed
CLAIMABLE_TASK_STATUSES = ("queued", "in_progress")
#: bound on the dependents walked when blocking (a task graph is small; this is a brake)
_MAX_BLOCKED = 1000


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


async def _all(conn: aiosqlite.Connection, sql: str, params: Iterable[Any]) -> list[Row]:
    async with conn.execute(sql, tuple(params)) as cursor:
        return list(await cursor.fetchall())


# --------------------------------------------------------------------------- claiming

_CANDIDATE_SQL = (
    "SELECT c.id, c.task_id, c.agent_id, c.attempt, t.status AS task_status, t.title,"
    " t.description, t.mission_id, t.mission_step, t.project_id, a.profile, a.model,"
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


async def mark_in_progress(
    conn: aiosqlite.Connection, conversation_id: int, worker: str, lease_s: float
) -> bool:
    """QUEUED -> IN_PROGRESS with our lease; False when someone else got there first."""
    now = utcnow()
    stamp = iso(now)
    cursor = await conn.execute(
        "UPDATE conversations SET status = 'IN_PROGRESS', lease_owner = ?, lease_expires_at = ?,"
        " heartbeat_at = ?, attempt = attempt + 1, started_at = ?, finished_at = NULL,"
        " updated_at = ? WHERE id = ? AND status = 'QUEUED'",
        (worker, iso(now + timedelta(seconds=lease_s)), stamp, stamp, stamp, conversation_id),
    )
    return cursor.rowcount == 1


async def renew_lease(
    conn: aiosqlite.Connection, conversation_id: int, worker: str, lease_s: float
) -> bool:
    """Extend our lease and heartbeat; False when the run is no longer ours."""
    now = utcnow()
    stamp = iso(now)
    cursor = await conn.execute(
        "UPDATE conversations SET lease_expires_at = ?, heartbeat_at = ?, updated_at = ?"
        " WHERE id = ? AND status = 'IN_PROGRESS' AND lease_owner = ?",
        (iso(now + timedelta(seconds=lease_s)), stamp, stamp, conversation_id, worker),
    )
    return cursor.rowcount == 1


async def run_state(conn: aiosqlite.Connection, conversation_id: int) -> tuple[str, str | None]:
    """(status, lease_owner) of a conversation; ("MISSING", None) if it is gone."""
    row = await _one(
        conn, "SELECT status, lease_owner FROM conversations WHERE id = ?", (conversation_id,)
    )
    if row is None:
        return "MISSING", None
    owner = row["lease_owner"]
    return str(row["status"]), None if owner is None else str(owner)


# --------------------------------------------------------------------------- ending


@dataclass(frozen=True, slots=True)
class RunRecord:
    """What a finished run stores on its conversation row."""

    transcript: str
    truncated: bool
    input_tokens: int
    output_tokens: int
    cost_usd: float
    exit_code: int | None
    #: the agent CLI's session id (a follow-up resumes it)
    session_id: str | None = None
    #: the profile's runtime and the model the run used (the run page shows them)
    runtime: str | None = None
    model: str | None = None
    #: input tokens read from the provider's cache (part of input_tokens)
    cached_tokens: int = 0


async def finish(
    conn: aiosqlite.Connection,
    conversation_id: int,
    worker: str,
    *,
    status: str,
    reason: str | None,
    record: RunRecord,
) -> bool:
    """IN_PROGRESS (ours) -> SUCCEEDED/FAILED with the run's record; False if not ours."""
    now = now_iso()
    cursor = await conn.execute(
        "UPDATE conversations SET status = ?, reason = ?, transcript = ?, truncated = ?,"
        " input_tokens = ?, output_tokens = ?, cost_usd = ?, exit_code = ?, session_id = ?,"
        " runtime = ?, model = ?, cached_tokens = ?,"
        " finished_at = ?, lease_expires_at = NULL, updated_at = ?"
        " WHERE id = ? AND status = 'IN_PROGRESS' AND lease_owner = ?",
        (
            status,
            reason,
            record.transcript,
            int(record.truncated),
            record.input_tokens,
            record.output_tokens,
            record.cost_usd,
            record.exit_code,
            record.session_id,
            record.runtime,
            record.model,
            record.cached_tokens,
            now,
            now,
            conversation_id,
            worker,
        ),
    )
    return cursor.rowcount == 1


async def attach_record(
    conn: aiosqlite.Connection, conversation_id: int, worker: str, record: RunRecord
) -> bool:
    """Store the record of a run whose conversation was ended by someone else (cancelled
    by the API, failed by stale recovery): its status and reason stay as they are, but
    what the run cost and said is not lost."""
    cursor = await conn.execute(
        "UPDATE conversations SET transcript = ?, truncated = ?, input_tokens = ?,"
        " output_tokens = ?, cost_usd = ?, exit_code = ?, session_id = ?,"
        " runtime = ?, model = ?, cached_tokens = ?,"
        " lease_expires_at = NULL, updated_at = ?"
        " WHERE id = ? AND lease_owner = ? AND status != 'IN_PROGRESS'",
        (
            record.transcript,
            int(record.truncated),
            record.input_tokens,
            record.output_tokens,
            record.cost_usd,
            record.exit_code,
            record.session_id,
            record.runtime,
            record.model,
            record.cached_tokens,
            now_iso(),
            conversation_id,
            worker,
        ),
    )
    return cursor.rowcount == 1


async def fail_queued(conn: aiosqlite.Connection, conversation_id: int, reason: str) -> bool:
    """QUEUED -> FAILED without a run (refused: quota, bound, circuit...)."""
    now = now_iso()
    cursor = await conn.execute(
        "UPDATE conversations SET status = 'FAILED', reason = ?, finished_at = ?, updated_at = ?"
        " WHERE id = ? AND status = 'QUEUED'",
        (reason, now, now, conversation_id),
    )
    return cursor.rowcount == 1


async def fail_in_progress(
    conn: aiosqlite.Connection,
    conversation_id: int,
    reason: str,
    *,
    owner: str | None = None,
    heartbeat_at: str | None = None,
) -> bool:
    """IN_PROGRESS -> FAILED, only if still owned by ``owner`` / still at ``heartbeat_at``
    (so a run that renewed its heartbeat meanwhile is left alone)."""
    now = now_iso()
    cursor = await conn.execute(
        "UPDATE conversations SET status = 'FAILED', reason = ?, finished_at = ?,"
        " lease_expires_at = NULL, updated_at = ? WHERE id = ? AND status = 'IN_PROGRESS'"
        " AND (? IS NULL OR lease_owner = ?) AND (? IS NULL OR heartbeat_at IS ?)",
        (reason, now, now, conversation_id, owner, owner, heartbeat_at, heartbeat_at),
    )
    return cursor.rowcount == 1


async def insert_requeued(
    conn: aiosqlite.Connection, task_id: int, agent_id: int, attempt: int
) -> int:
    """A new QUEUED conversation for a task whose run was interrupted; ``attempt`` carried."""
    now = now_iso()
    cursor = await conn.execute(
        "INSERT INTO conversations (task_id, agent_id, status, attempt, created_at, updated_at)"
        " VALUES (?, ?, 'QUEUED', ?, ?, ?)",
        (task_id, agent_id, attempt, now, now),
    )
    return int(cursor.lastrowid or 0)


# --------------------------------------------------------------------------- tasks


async def set_task_status(
    tx: Tx,
    task_id: int,
    from_statuses: tuple[str, ...],
    to_status: str,
    extra: dict[str, Any] | None = None,
) -> str | None:
    """Move a live task from one of ``from_statuses``; returns the old status or None."""
    row = await _one(
        tx.conn, "SELECT status FROM tasks WHERE id = ? AND deleted_at IS NULL", (task_id,)
    )
    if row is None or row["status"] not in from_statuses or row["status"] == to_status:
        return None
    old = str(row["status"])
    cursor = await tx.conn.execute(
        "UPDATE tasks SET status = ?, version = version + 1, updated_at = ?"
        " WHERE id = ? AND status = ? AND deleted_at IS NULL",
        (to_status, now_iso(), task_id, old),
    )
    if cursor.rowcount != 1:
        return None
    await tx.emit(
        EventType.TASK_STATUS_CHANGED,
        "task",
        task_id,
        {"from": old, "to": to_status, **(extra or {})},
    )
    return old


async def _active_conversation(conn: aiosqlite.Connection, task_id: int) -> int | None:
    row = await conversation_store.active_for_task(conn, task_id)
    return None if row is None else int(row["id"])


async def queue_ready_dependents(tx: Tx, task_id: int) -> list[int]:
    """After ``task_id`` succeeded: queue a conversation for every waiting dependent
    whose dependencies have now all succeeded. Returns the new conversation ids."""
    queued: list[int] = []
    for dependent in await task_store.dependents_tx(tx.conn, task_id):
        if dependent["status"] != "queued":
            continue
        dep_id = int(dependent["id"])
        if await task_store.unmet_dependency_count(tx.conn, dep_id):
            continue
        if await _active_conversation(tx.conn, dep_id) is not None:
            continue
        now = now_iso()
        cursor = await tx.conn.execute(
            "INSERT INTO conversations (task_id, agent_id, status, created_at, updated_at)"
            " VALUES (?, ?, 'QUEUED', ?, ?)",
            (dep_id, int(dependent["agent_id"]), now, now),
        )
        conversation_id = int(cursor.lastrowid or 0)
        await tx.emit(
            EventType.CONVERSATION_QUEUED,
            "conversation",
            conversation_id,
            {"task_id": dep_id, "agent_id": int(dependent["agent_id"]), "after_task": task_id},
        )
        queued.append(conversation_id)
    return queued


async def block_dependents(tx: Tx, task_id: int) -> list[int]:
    """After ``task_id`` failed: block every waiting task that (transitively) depends on
    it, since it can never run; a queued conversation of one is cancelled."""
    blocked: list[int] = []
    pending = [task_id]
    seen = {task_id}
    while pending and len(blocked) < _MAX_BLOCKED:
        cause = pending.pop(0)
        for dependent in await task_store.dependents_tx(tx.conn, cause):
            dep_id = int(dependent["id"])
            if dep_id in seen or dependent["status"] != "queued":
                continue
            seen.add(dep_id)
            reason = f"dependency {cause} will not succeed"
            if await set_task_status(tx, dep_id, ("queued",), "blocked", {"because_of": cause}):
                active = await _active_conversation(tx.conn, dep_id)
                if active is not None:
                    now = now_iso()
                    await tx.conn.execute(
                        "UPDATE conversations SET status = 'CANCELLED', reason = ?,"
                        " finished_at = ?, updated_at = ? WHERE id = ? AND status = 'QUEUED'",
                        (reason, now, now, active),
                    )
                    await tx.emit(
                        EventType.CONVERSATION_CANCELLED,
                        "conversation",
                        active,
                        {"task_id": dep_id, "reason": reason},
                    )
                blocked.append(dep_id)
                pending.append(dep_id)
    return blocked


async def end_task(tx: Tx, task_id: int, *, succeeded: bool, reason: str | None) -> dict[str, Any]:
    """The task of a finished or refused conversation succeeds or fails, with the
    consequences for its dependents. Returns a summary for the audit record."""
    summary: dict[str, Any] = {}
    if succeeded:
        if await set_task_status(tx, task_id, ("in_progress", "queued"), "succeeded"):
            summary["task"] = "succeeded"
            summary["dependents_queued"] = await queue_ready_dependents(tx, task_id)
    else:
        extra = {"reason": reason} if reason else {}
        if await set_task_status(tx, task_id, ("in_progress", "queued"), "failed", extra):
            summary["task"] = "failed"
            summary["dependents_blocked"] = await block_dependents(tx, task_id)
    if "task" in summary:
        await _mission_follows(tx, task_id, summary["task"])
        # the review gate: a review task's verdict goes to the work it reviews
        from app.tasks.review import task_ended
        from app.tasks.schemas import TaskStatus

        await task_ended(tx, task_id, TaskStatus(summary["task"]))
    return summary


async def _mission_follows(tx: Tx, task_id: int, task_status: str) -> None:
    """A mission's last succeeded step completes it; a failed task fails it.

    A mission over one of its bounds is left to the worker's bound check, which
    fails it with the bound named and an escalation.
    """
    from app.missions.service import task_finished
    from app.runner.accounting import mission_overrun, mission_state
    from app.tasks.schemas import TaskStatus

    row = await _one(tx.conn, "SELECT mission_id FROM tasks WHERE id = ?", (task_id,))
    if row is None or row["mission_id"] is None:
        return
    mission = await mission_state(tx.conn, int(row["mission_id"]))
    if mission is not None and mission_overrun(mission) is not None:
        return
    await task_finished(tx, int(row["mission_id"]), TaskStatus(task_status))
