"""Task state changes inside an open transaction, with their consequences: the one
place a task moves.

Used by the task service (the API, the review gate, a cancelled mission's open
tasks) and by the worker (:func:`start` when it claims a run, :func:`run_ended`
when a run ends or is refused). Nothing here opens a transaction; the caller
audits.

Consequences of a change:

* a task that ends (succeeded, failed, cancelled) or is blocked loses its
  QUEUED / IN_PROGRESS conversation (set CANCELLED: the worker sees it and
  stops the run);
* a task that succeeds queues a conversation for every waiting dependent whose
  dependencies have now all succeeded;
* a task that fails, is cancelled or deleted blocks its waiting dependents
  (transitively): they could never run;
* a task cancelled while it waits for approval is marked refused;
* a task of a mission that succeeds or fails moves its mission
  (:func:`app.missions.lifecycle.task_ended`: missions follow tasks through
  this one call);
* a task that ends tells the review gate (a review task's verdict goes to the
  work it reviews).

``dependents_queued`` in a summary lists the *task* ids of the dependents that
got a run, whichever path ended the task (the API, the review gate, the worker).

A task waiting for a person's approval (``approval = 'pending'``, its run would
get a shell: ``app/tasks/approval.py``) keeps its status but gets no run:
:func:`queue_if_ready`, the one place runs are queued, refuses it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from app.conversations import store as conversations
from app.core.database import Row
from app.events.transaction import Tx
from app.events.types import EventType
from app.missions import lifecycle as missions
from app.tasks import store
from app.tasks.schemas import TaskStatus

ALLOWED: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.QUEUED: frozenset(
        {TaskStatus.IN_PROGRESS, TaskStatus.BLOCKED, TaskStatus.CANCELLED, TaskStatus.FAILED}
    ),
    TaskStatus.BLOCKED: frozenset({TaskStatus.QUEUED, TaskStatus.CANCELLED}),
    TaskStatus.IN_PROGRESS: frozenset(
        {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED}
    ),
    TaskStatus.SUCCEEDED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}

_ENDS_RUN = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.BLOCKED}
)


def allowed(from_status: TaskStatus, to_status: TaskStatus) -> bool:
    return to_status in ALLOWED[from_status]


async def queue_run(
    tx: Tx,
    task_id: int,
    agent_id: int,
    *,
    rule_depth: int = 0,
    after_task: int | None = None,
) -> int:
    """Queue a conversation for the task (the unique index refuses a second one).
    ``after_task``: the dependency whose success made it ready (named in the event)."""
    conversation_id = await conversations.insert_queued(tx.conn, task_id, agent_id)
    payload: dict[str, Any] = {"task_id": task_id, "agent_id": agent_id}
    if after_task is not None:
        payload["after_task"] = after_task
    await tx.emit(
        EventType.CONVERSATION_QUEUED,
        "conversation",
        conversation_id,
        payload,
        rule_depth=rule_depth,
    )
    return conversation_id


async def queue_if_ready(
    tx: Tx,
    task_id: int,
    agent_id: int,
    *,
    rule_depth: int = 0,
    after_task: int | None = None,
) -> int | None:
    """Queue a run if every dependency has succeeded, none is queued yet and the task
    does not wait for a person's approval (a shell needs a person,
    ``app/tasks/approval.py``): the one gate every run passes."""
    if await store.awaiting_approval(tx.conn, task_id):
        return None
    if await store.unmet_dependency_count(tx.conn, task_id):
        return None
    if await conversations.active_for_task(tx.conn, task_id) is not None:
        return None
    return await queue_run(tx, task_id, agent_id, rule_depth=rule_depth, after_task=after_task)


async def cancel_run(tx: Tx, task_id: int, reason: str, *, rule_depth: int = 0) -> int | None:
    conversation_id = await conversations.cancel_active(tx.conn, task_id, reason)
    if conversation_id is not None:
        await tx.emit(
            EventType.CONVERSATION_CANCELLED,
            "conversation",
            conversation_id,
            {"task_id": task_id, "reason": reason},
            rule_depth=rule_depth,
        )
    return conversation_id


async def _status_event(
    tx: Tx, task_id: int, old: str, new: str, extra: dict[str, Any], rule_depth: int
) -> None:
    await tx.emit(
        EventType.TASK_STATUS_CHANGED,
        "task",
        task_id,
        {"from": old, "to": new, **extra},
        rule_depth=rule_depth,
    )


async def block_dependents(tx: Tx, task_id: int, *, rule_depth: int = 0) -> list[int]:
    """Block every waiting task that (transitively) depends on ``task_id``."""
    blocked: list[int] = []
    pending = deque([task_id])
    while pending:
        cause = pending.popleft()
        for dependent in await store.dependents_tx(tx.conn, cause):
            if dependent["status"] != TaskStatus.QUEUED.value:
                continue
            dep_id = int(dependent["id"])
            if not await store.set_status(
                tx.conn, dep_id, TaskStatus.QUEUED.value, TaskStatus.BLOCKED.value
            ):
                continue
            await cancel_run(
                tx, dep_id, f"dependency {cause} will not succeed", rule_depth=rule_depth
            )
            await _status_event(tx, dep_id, "queued", "blocked", {"because_of": cause}, rule_depth)
            blocked.append(dep_id)
            pending.append(dep_id)
    return blocked


async def queue_ready_dependents(tx: Tx, task_id: int, *, rule_depth: int = 0) -> list[int]:
    """After ``task_id`` succeeded: queue a run for every waiting dependent that is
    now ready (:func:`queue_if_ready`). Returns the dependents' *task* ids."""
    queued: list[int] = []
    for dependent in await store.dependents_tx(tx.conn, task_id):
        if dependent["status"] != TaskStatus.QUEUED.value:
            continue
        conversation_id = await queue_if_ready(
            tx,
            int(dependent["id"]),
            int(dependent["agent_id"]),
            rule_depth=rule_depth,
            after_task=task_id,
        )
        if conversation_id is not None:
            queued.append(int(dependent["id"]))
    return queued


async def move(
    tx: Tx,
    row: Row,
    to_status: TaskStatus,
    *,
    reason: str,
    rule_depth: int = 0,
    detail: dict[str, Any] | None = None,
    mission_bound_first: bool = False,
) -> dict[str, Any]:
    """Move one task (already checked with :func:`allowed`) and apply the consequences.

    ``detail``: extra fields of the ``task.status_changed`` event.
    ``mission_bound_first``: the worker's end of a run; a mission that went over a
    bound is failed by the worker's bound check instead
    (:func:`app.missions.lifecycle.task_ended`).

    Returns a summary for the caller's audit record. Raises ``LookupError`` if
    the task changed status meanwhile.
    """
    task_id = int(row["id"])
    old = TaskStatus(row["status"])
    if not await store.set_status(tx.conn, task_id, old.value, to_status.value):
        raise LookupError(task_id)
    summary: dict[str, Any] = {"from": old.value, "to": to_status.value}
    if to_status is TaskStatus.CANCELLED and await store.set_approval(
        tx.conn, task_id, "refused", expected="pending", approved_by=tx.actor
    ):
        summary["approval"] = "refused"  # cancelled while waiting: the person said no
    if to_status in _ENDS_RUN:
        cancelled = await cancel_run(tx, task_id, reason, rule_depth=rule_depth)
        if cancelled is not None:
            summary["conversation_cancelled"] = cancelled
    await _status_event(tx, task_id, old.value, to_status.value, detail or {}, rule_depth)
    if to_status is TaskStatus.QUEUED:
        queued = await queue_if_ready(tx, task_id, int(row["agent_id"]), rule_depth=rule_depth)
        if queued is not None:
            summary["conversation_queued"] = queued
    elif to_status is TaskStatus.SUCCEEDED:
        summary["dependents_queued"] = await queue_ready_dependents(
            tx, task_id, rule_depth=rule_depth
        )
    elif to_status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        summary["dependents_blocked"] = await block_dependents(tx, task_id, rule_depth=rule_depth)
    if to_status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED) and row["mission_id"] is not None:
        await missions.task_ended(
            tx,
            int(row["mission_id"]),
            to_status.value,
            rule_depth=rule_depth,
            bound_first=mission_bound_first,
        )
    if to_status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED):
        from app.tasks.review import task_ended  # the review gate follows (imports this)

        await task_ended(tx, task_id, to_status)
    return summary


# --------------------------------------------------------------------------- the worker's calls


async def start(tx: Tx, task_id: int) -> bool:
    """The worker claimed a run of the task: queued -> in_progress (a task already in
    progress, e.g. its work sent back by a review, stays). True when it moved."""
    row = await store.task_row_tx(tx.conn, task_id)
    if row is None or row["status"] != TaskStatus.QUEUED.value:
        return False
    await move(tx, row, TaskStatus.IN_PROGRESS, reason="run started")
    return True


#: a run of a task in these statuses ends it (queued: the run was refused before it started)
_RUN_ENDS_FROM = frozenset({TaskStatus.QUEUED.value, TaskStatus.IN_PROGRESS.value})


async def run_ended(tx: Tx, task_id: int, *, succeeded: bool, reason: str | None) -> dict[str, Any]:
    """The task of a finished, refused or abandoned run succeeds or fails, with every
    consequence of :func:`move` (dependents, mission, review gate).

    Returns the summary the worker's audit record carries: ``task`` (the new
    status) and ``dependents_queued`` (task ids) or ``dependents_blocked``; empty
    when the task had already left queued/in progress (cancelled, deleted)."""
    row = await store.task_row_tx(tx.conn, task_id)
    if row is None or row["status"] not in _RUN_ENDS_FROM:
        return {}
    to_status = TaskStatus.SUCCEEDED if succeeded else TaskStatus.FAILED
    detail = {"reason": reason} if reason and not succeeded else {}
    moved = await move(
        tx,
        row,
        to_status,
        reason=reason or f"run {to_status.value}",
        detail=detail,
        mission_bound_first=True,
    )
    summary: dict[str, Any] = {"task": to_status.value}
    for key in ("dependents_queued", "dependents_blocked", "conversation_cancelled"):
        if key in moved:
            summary[key] = moved[key]
    return summary
