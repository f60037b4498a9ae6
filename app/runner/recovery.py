"""Heartbeat recovery (F19) and recovery of a worker's own orphaned runs.

**Stale runs** (:func:`sweep_stale`, every minute in every worker): an IN_PROGRESS
conversation whose ``heartbeat_at`` is older than ``stale_run_minutes`` belongs to
a worker that died or hangs. It becomes FAILED with the reason
``stale: no heartbeat for N minutes``, its task fails (waiting dependents are
blocked) and a ``stale_run`` escalation opens. The UPDATE is conditional on the
row still being IN_PROGRESS *with the heartbeat that was read*, inside
``BEGIN IMMEDIATE``: two workers sweeping at once, or a sweep racing the owner's
renewal, change each row at most once. A sweep that finds nothing writes nothing.
A worker never sweeps the runs it is running itself (``skip``): their heartbeat is
a wall-clock stamp, and when NTP moves a Pi's clock forward after boot a live run
would otherwise look stale until its next renewal.

**Own orphans** (:func:`recover_own`, at start-up): IN_PROGRESS conversations whose
``lease_owner`` is this worker's id were interrupted by a crash or restart of
this worker (the id is stable across restarts; a lock file guarantees no live
process holds it). The agent may have done part of the work, so the run is not
resumed in place: the conversation is closed as FAILED with the reason
``worker restarted during the run`` (its history stays truthful) and a **new**
QUEUED conversation is created for the same task, carrying the attempt counter.
That happens once: a run interrupted again (attempt >= 2) fails its task and
opens a ``worker_restart`` escalation instead of looping. A worker stopped by
SIGTERM mid-run uses the same path with ``worker stopped during the run``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.conversations import lifecycle as runs
from app.conversations import store as conversation_store
from app.core.clock import iso, parse_iso, utcnow
from app.core.context import AppContext
from app.events.transaction import Tx, transaction
from app.events.types import EventType
from app.runner import claims
from app.tasks import store as task_store
from app.tasks import transitions

log = logging.getLogger("mission_control.runner.recovery")

CLIENT = "worker"
RESTART_REASON = "worker restarted during the run"
STOP_REASON = "worker stopped during the run"
_SWEEP_BATCH = 100


@dataclass(frozen=True, slots=True)
class Recovered:
    conversation_id: int
    #: the new QUEUED conversation, or None when the task failed instead
    requeued_as: int | None


async def requeue_interrupted(
    tx: Tx,
    *,
    conversation_id: int,
    task_id: int,
    agent_id: int,
    attempt: int,
    reason: str,
) -> int | None:
    """After an interrupted conversation was set FAILED: queue a new one for its task
    (attempt carried), once; else fail the task and escalate. Returns the new id."""
    task = await task_store.task_row_tx(tx.conn, task_id)
    task_status = None if task is None else str(task["status"])
    if task_status not in claims.CLAIMABLE_TASK_STATUSES:
        return None  # cancelled, deleted or ended meanwhile: nothing to resume
    if attempt < claims.MAX_ATTEMPTS_AFTER_RESTART:
        if await conversation_store.active_for_task(tx.conn, task_id) is not None:
            return None
        new_id = await runs.requeue(tx.conn, task_id, agent_id, attempt)
        await tx.emit(
            EventType.CONVERSATION_QUEUED,
            "conversation",
            new_id,
            {
                "task_id": task_id,
                "agent_id": agent_id,
                "requeued_from": conversation_id,
                "attempt": attempt,
                "reason": reason,
            },
        )
        await tx.audit(
            "conversation.requeued",
            f"conversation:{new_id}",
            {"from": conversation_id, "task_id": task_id, "attempt": attempt, "reason": reason},
        )
        return new_id
    summary = await transitions.run_ended(tx, task_id, succeeded=False, reason=reason)
    await tx.escalate(
        "worker_restart",
        "conversation",
        conversation_id,
        f"conversation {conversation_id} of task {task_id} was interrupted {attempt} times"
        f" ({reason}); the task failed instead of being queued again",
        {"task_id": task_id, "attempt": attempt},
    )
    await tx.audit(
        "conversation.abandoned",
        f"conversation:{conversation_id}",
        {"task_id": task_id, "attempt": attempt, "reason": reason, **summary},
        outcome="failed",
    )
    return None


async def recover_own(ctx: AppContext, worker: str, actor: str) -> list[Recovered]:
    """Close this worker's orphaned IN_PROGRESS runs and re-queue their tasks once."""
    rows = await ctx.db.fetch_all(
        "SELECT id, task_id, agent_id, attempt FROM conversations"
        " WHERE status = 'IN_PROGRESS' AND lease_owner = ? ORDER BY id",
        (worker,),
    )
    if not rows:
        return []
    recovered: list[Recovered] = []
    async with transaction(ctx, actor, CLIENT) as tx:
        for row in rows:
            conversation_id = int(row["id"])
            if not await runs.fail_in_progress(
                tx.conn, conversation_id, RESTART_REASON, owner=worker
            ):
                continue
            task_id, agent_id, attempt = int(row["task_id"]), int(row["agent_id"]), int(row[3])
            await tx.emit(
                EventType.CONVERSATION_FAILED,
                "conversation",
                conversation_id,
                {"task_id": task_id, "agent_id": agent_id, "reason": RESTART_REASON},
            )
            new_id = await requeue_interrupted(
                tx,
                conversation_id=conversation_id,
                task_id=task_id,
                agent_id=agent_id,
                attempt=attempt,
                reason=RESTART_REASON,
            )
            recovered.append(Recovered(conversation_id, new_id))
    for item in recovered:
        log.warning(
            "recovered an orphaned run of this worker",
            extra={"conversation_id": item.conversation_id, "requeued_as": item.requeued_as},
        )
    return recovered


def _minutes_since(stamp: str | None, now: datetime, fallback: int) -> int:
    if stamp is None:
        return fallback
    try:
        return max(fallback, int((now - parse_iso(stamp)).total_seconds() // 60))
    except ValueError:
        return fallback


async def sweep_stale(
    ctx: AppContext, actor: str, *, stale_minutes: int, skip: Collection[int] = ()
) -> list[int]:
    """Fail IN_PROGRESS conversations without a heartbeat for ``stale_minutes``
    (except ``skip``: the sweeping worker's own live runs)."""
    now = utcnow()
    cutoff = iso(now - timedelta(minutes=stale_minutes))
    # read first: an idle sweep must not even open a write transaction (SD card)
    candidates = await ctx.db.fetch_all(
        "SELECT id FROM conversations WHERE status = 'IN_PROGRESS'"
        " AND coalesce(heartbeat_at, started_at, updated_at) < ? ORDER BY id LIMIT ?",
        (cutoff, _SWEEP_BATCH),
    )
    if all(int(row[0]) in skip for row in candidates):
        return []
    failed: list[int] = []
    async with transaction(ctx, actor, CLIENT) as tx:
        rows = await tx.conn.execute_fetchall(
            "SELECT id, task_id, agent_id, lease_owner, heartbeat_at, started_at, updated_at"
            " FROM conversations WHERE status = 'IN_PROGRESS'"
            " AND coalesce(heartbeat_at, started_at, updated_at) < ? ORDER BY id LIMIT ?",
            (cutoff, _SWEEP_BATCH),
        )
        for row in rows:
            conversation_id, task_id = int(row[0]), int(row[1])
            if conversation_id in skip:
                continue
            heartbeat = row[4]
            last = heartbeat if heartbeat is not None else (row[5] or row[6])
            minutes = _minutes_since(last, now, stale_minutes)
            reason = f"stale: no heartbeat for {minutes} minutes"
            if not await runs.fail_in_progress(
                tx.conn, conversation_id, reason, heartbeat_at=heartbeat
            ):
                continue
            await tx.emit(
                EventType.CONVERSATION_FAILED,
                "conversation",
                conversation_id,
                {"task_id": task_id, "agent_id": int(row[2]), "reason": reason},
            )
            summary = await transitions.run_ended(tx, task_id, succeeded=False, reason=reason)
            await tx.escalate(
                "stale_run",
                "conversation",
                conversation_id,
                f"conversation {conversation_id} of task {task_id} had no heartbeat for"
                f" {minutes} minutes (worker {row[3] or 'unknown'}); it was failed",
                {"task_id": task_id, "lease_owner": row[3], "heartbeat_at": heartbeat},
            )
            await tx.audit(
                "conversation.stale",
                f"conversation:{conversation_id}",
                {"task_id": task_id, "lease_owner": row[3], "reason": reason, **summary},
                outcome="failed",
            )
            failed.append(conversation_id)
    if failed:
        log.warning("failed stale runs", extra={"conversations": failed})
    return failed
