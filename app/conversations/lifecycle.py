"""A conversation's (one run's) state changes: the one place they are written.

The task domain queues and cancels runs (``app/tasks/transitions.py`` through
:mod:`app.conversations.store`); the worker moves a run through the rest of
its life here: claimed (QUEUED -> IN_PROGRESS with a lease), its lease renewed,
refused before it started (QUEUED -> FAILED), ended (IN_PROGRESS ->
SUCCEEDED/FAILED with its record), failed by recovery, queued again after an
interruption, and its record kept when someone else ended it first. What only
a worker knows (when to renew a lease and for how long, the sandbox, limits,
process supervision, the verdict of a run) stays in ``app/runner/``; it passes
the outcome here.

Every function runs inside the caller's write transaction (``BEGIN
IMMEDIATE``), and every UPDATE is conditional on the state it expects, with its
rowcount checked: a second claim or end of one run changes nothing. Events and
audit records are the caller's (their payloads carry what only the caller
knows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import aiosqlite

from app.core.clock import iso, now_iso, utcnow


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


async def claim(
    conn: aiosqlite.Connection, conversation_id: int, worker: str, lease_s: float
) -> bool:
    """QUEUED -> IN_PROGRESS with ``worker``'s lease; False when someone else got
    there first."""
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
    """Extend ``worker``'s lease and heartbeat; False when the run is no longer its."""
    now = utcnow()
    stamp = iso(now)
    cursor = await conn.execute(
        "UPDATE conversations SET lease_expires_at = ?, heartbeat_at = ?, updated_at = ?"
        " WHERE id = ? AND status = 'IN_PROGRESS' AND lease_owner = ?",
        (iso(now + timedelta(seconds=lease_s)), stamp, stamp, conversation_id, worker),
    )
    return cursor.rowcount == 1


async def state(conn: aiosqlite.Connection, conversation_id: int) -> tuple[str, str | None]:
    """(status, lease_owner) of a conversation; ("MISSING", None) if it is gone."""
    async with conn.execute(
        "SELECT status, lease_owner FROM conversations WHERE id = ?", (conversation_id,)
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return "MISSING", None
    owner = row[1]
    return str(row[0]), None if owner is None else str(owner)


#: the columns a run's record sets, in the order of ``_record_values``
_RECORD_SET = (
    "transcript = ?, truncated = ?, input_tokens = ?, output_tokens = ?, cost_usd = ?,"
    " exit_code = ?, session_id = ?, runtime = ?, model = ?, cached_tokens = ?"
)


def _record_values(record: RunRecord) -> tuple[object, ...]:
    return (
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
    )


async def finish(
    conn: aiosqlite.Connection,
    conversation_id: int,
    worker: str,
    *,
    status: str,
    reason: str | None,
    record: RunRecord,
) -> bool:
    """IN_PROGRESS (``worker``'s) -> SUCCEEDED/FAILED with the run's record; False if
    the run is not ``worker``'s any more."""
    now = now_iso()
    cursor = await conn.execute(
        f"UPDATE conversations SET status = ?, reason = ?, {_RECORD_SET},"
        " finished_at = ?, lease_expires_at = NULL, updated_at = ?"
        " WHERE id = ? AND status = 'IN_PROGRESS' AND lease_owner = ?",
        (status, reason, *_record_values(record), now, now, conversation_id, worker),
    )
    return cursor.rowcount == 1


async def attach_record(
    conn: aiosqlite.Connection, conversation_id: int, worker: str, record: RunRecord
) -> bool:
    """Store the record of a run whose conversation was ended by someone else (cancelled
    by the API, failed by stale recovery): its status and reason stay as they are, but
    what the run cost and said is not lost."""
    cursor = await conn.execute(
        f"UPDATE conversations SET {_RECORD_SET}, lease_expires_at = NULL, updated_at = ?"
        " WHERE id = ? AND lease_owner = ? AND status != 'IN_PROGRESS'",
        (*_record_values(record), now_iso(), conversation_id, worker),
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


async def requeue(conn: aiosqlite.Connection, task_id: int, agent_id: int, attempt: int) -> int:
    """A new QUEUED conversation for a task whose run was interrupted; ``attempt``
    carried. The unique index ``conversations_one_active`` refuses a second one."""
    now = now_iso()
    cursor = await conn.execute(
        "INSERT INTO conversations (task_id, agent_id, status, attempt, created_at, updated_at)"
        " VALUES (?, ?, 'QUEUED', ?, ?, ?)",
        (task_id, agent_id, attempt, now, now),
    )
    return int(cursor.lastrowid or 0)
