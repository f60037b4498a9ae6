"""Task state changes inside an open transaction, with their consequences.

Used by the task service and by the mission service (cancelling a mission
cancels its open tasks). Nothing here opens a transaction or calls another
service; the caller audits.

Consequences of a change:

* a task that ends (succeeded, failed, cancelled) or is blocked loses its
  QUEUED / IN_PROGRESS conversation (set CANCELLED: the worker sees it and
  stops the run);
* a task that succeeds queues a conversation for every waiting dependent whose
  dependencies have now all succeeded;
* a task that fails, is cancelled or deleted blocks its waiting dependents
  (transitively): they could never run;
* a task cancelled while it waits for approval is marked refused.

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


async def queue_run(tx: Tx, task_id: int, agent_id: int, *, rule_depth: int = 0) -> int:
    """Queue a conversation for the task (the unique index refuses a second one)."""
    conversation_id = await conversations.insert_queued(tx.conn, task_id, agent_id)
    await tx.emit(
        EventType.CONVERSATION_QUEUED,
        "conversation",
        conversation_id,
        {"task_id": task_id, "agent_id": agent_id},
        rule_depth=rule_depth,
    )
    return conversation_id


async def queue_if_ready(tx: Tx, task_id: int, agent_id: int, *, rule_depth: int = 0) -> int | None:
    """Queue a run if every dependency has succeeded, none is queued yet and the task
    does not wait for a person's approval (a shell needs a person,
    ``app/tasks/approval.py``): the one gate every run passes."""
    if await store.awaiting_approval(tx.conn, task_id):
        return None
    if await store.unmet_dependency_count(tx.conn, task_id):
        return None
    if await conversations.active_for_task(tx.conn, task_id) is not None:
        return None
    return await queue_run(tx, task_id, agent_id, rule_depth=rule_depth)


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
    queued: list[int] = []
    for dependent in await store.dependents_tx(tx.conn, task_id):
        if dependent["status"] != TaskStatus.QUEUED.value:
            continue
        conversation_id = await queue_if_ready(
            tx, int(dependent["id"]), int(dependent["agent_id"]), rule_depth=rule_depth
        )
        if conversation_id is not None:
            queued.append(int(dependent["id"]))
    return queued


async def move(
    tx: Tx, row: Row, to_status: TaskStatus, *, reason: str, rule_depth: int = 0
) -> dict[str, Any]:
    """Move one task (already checked with :func:`allowed`) and apply the consequences.

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
    await _status_event(tx, task_id, old.value, to_status.value, {}, rule_depth)
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
    if to_status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED):
        from app.tasks.review import task_ended  # the review gate follows (imports this)

        await task_ended(tx, task_id, to_status)
    return summary
