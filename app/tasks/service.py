"""The rules of tasks: pre-flight validated creation (F16), status changes, edits.

Other modules (the rules engine, the worker) call :func:`create_task` and
:func:`change_task_status`; routers call the rest.

Creation, in one transaction: the pre-flight facts are read and checked, then
the task row, its dependency rows, a QUEUED conversation (only when every
dependency has already succeeded, or there is none), the events
``task.created`` (+ ``conversation.queued``) and the audit record are written.
A task whose dependencies have not all succeeded stays ``queued`` with no
conversation; the one that makes the last of them succeed queues it
(``app/tasks/transitions.py``).

A refused task is recorded in a transaction of its own (audit outcome
``refused``, event ``task.refused``) and nothing of the task is stored. A
refusal that comes from an agent, a rule, a schedule or an API token also opens
an escalation ``preflight_refused`` (something acted on its own and needs a
human); a person's own mistake in a form (``own_input``: a login session) is
answered in place, next to the field, and opens none.

Idempotency: a request whose ``idempotency_key`` is already used by a live
task with identical content returns that task (HTTP 200, nothing new is
written, no checks re-run); with different content it is refused by the
``idempotency_key_unique`` check.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

from pydantic import TypeAdapter

from app.access.caller import Caller
from app.agents import shell_readers
from app.core.clock import iso, utcnow
from app.core.context import AppContext
from app.core.database import Row
from app.core.errors import ApiError
from app.core.pagination import PageParams
from app.events.transaction import Tx, transaction
from app.events.types import EventType
from app.missions import lifecycle as mission_lifecycle
from app.tasks import approval, preflight, review_store, store, transitions, waiting
from app.tasks.preflight import Failure
from app.tasks.schemas import (
    TaskCreate,
    TaskStatus,
    TaskUpdate,
    TaskView,
)

log = logging.getLogger("mission_control.tasks")

EDITABLE = frozenset({TaskStatus.QUEUED, TaskStatus.BLOCKED})


def _view_values(row: Row, depends_on: list[int]) -> dict[str, Any]:
    values: dict[str, Any] = dict(zip(row.keys(), row, strict=True))
    tools = values["required_tools"]
    values["required_tools"] = json.loads(tools) if tools != "[]" else []
    values["needs_shell"] = bool(values["needs_shell"])
    values["depends_on"] = depends_on
    return values


def task_view(row: Row, depends_on: list[int]) -> TaskView:
    """The view of a stored row: a dict built in C from the row's own column names,
    validated in one call (field by field was the list endpoint's largest cost;
    docs/performance.md)."""
    return TaskView.model_validate(_view_values(row, depends_on))


_TASK_VIEWS = TypeAdapter(list[TaskView])


def task_views(rows: list[Row]) -> list[TaskView]:
    """Views of list rows carrying ``depends_on_json``, validated in one call."""
    values = []
    for row in rows:
        deps = row["depends_on_json"]
        values.append(_view_values(row, sorted(json.loads(deps)) if deps != "[]" else []))
    return _TASK_VIEWS.validate_python(values)


def not_found() -> ApiError:
    return ApiError(404, "not_found", "no such task")


def preflight_error(failures: list[Failure]) -> ApiError:
    return ApiError(
        422,
        "preflight_failed",
        f"the task failed {len({f.check for f in failures})} pre-flight check(s)",
        [f.as_dict() for f in failures],
    )


def _normalised_due(due_at: str | None) -> str | None:
    if due_at is None:
        return None
    moment = preflight.parse_due(due_at)
    return iso(moment) if moment is not None else None


def _values(spec: TaskCreate, actor: str) -> dict[str, Any]:
    """The row as it would be stored (also what an idempotent repeat is compared on)."""
    return {
        "title": spec.title.strip(),
        "description": spec.description,
        "agent_id": spec.agent_id,
        "mission_id": spec.mission_id,
        "mission_step": spec.mission_step,
        "project_id": spec.project_id,
        "priority": spec.priority,
        "required_tools": sorted(t.value for t in spec.required_tools),
        "needs_shell": spec.wants_shell,
        "due_at": _normalised_due(spec.due_at),
        "idempotency_key": spec.idempotency_key,
        "created_by": actor,
        "review": spec.review,
    }


def _same_content(row: Row, depends_on: list[int], values: dict[str, Any]) -> bool:
    stored = {
        "title": row["title"],
        "description": row["description"],
        "agent_id": row["agent_id"],
        "mission_id": row["mission_id"],
        "mission_step": row["mission_step"],
        "project_id": row["project_id"],
        "priority": row["priority"],
        "required_tools": sorted(json.loads(row["required_tools"])),
        "needs_shell": bool(row["needs_shell"]),
        "due_at": row["due_at"],
    }
    wanted = {key: values[key] for key in stored}
    return stored == wanted and sorted(depends_on) == sorted(values["depends_on"])


# --- creation --------------------------------------------------------------------


async def submit_task(
    ctx: AppContext,
    spec: TaskCreate,
    caller: Caller,
    *,
    follows_conversation_id: int | None = None,
) -> tuple[TaskView, bool]:
    """A task asked for over HTTP; returns the view and whether it is new (False: an
    idempotent repeat).

    A person's own input at a form (a login session) that is refused is audited
    but opens no escalation. Only an admin in a browser session decides for a task
    whose run would get a shell (``decided_by_person``); anyone else's waits for
    approval (app/tasks/approval.py). ``follows_conversation_id``: the task
    continues that run's CLI session (a follow-up turn); set in the same
    transaction that queues its run."""
    return await _submit(
        ctx,
        spec,
        actor=caller.actor,
        client=caller.client,
        own_input=caller.principal.kind == "session",
        follows_conversation_id=follows_conversation_id,
        decided_by_person=shell_readers.decided_by_person(caller.principal),
    )


async def _submit(
    ctx: AppContext,
    spec: TaskCreate,
    *,
    actor: str,
    client: str,
    rule_depth: int = 0,
    own_input: bool = False,
    follows_conversation_id: int | None = None,
    decided_by_person: bool = False,
) -> tuple[TaskView, bool]:
    """Create a task for ``actor``: a person over HTTP (:func:`submit_task`), a rule
    or the worker (:func:`create_task`)."""
    values = _values(spec, actor)
    values["follows_conversation_id"] = follows_conversation_id
    values["decided_by_person"] = decided_by_person
    values["depends_on"] = list(spec.depends_on)
    failures: list[Failure] = []
    task_id = 0
    created = False
    try:
        async with transaction(ctx, actor, client) as tx:
            if spec.idempotency_key:
                existing = await store.task_by_key_tx(tx.conn, spec.idempotency_key)
                if existing is not None:
                    deps = await store.dependencies_of_tx(tx.conn, int(existing["id"]))
                    if _same_content(existing, deps, values):
                        task_id = int(existing["id"])
            if not task_id:
                facts = await preflight.gather(tx.conn, spec, ctx.settings, utcnow())
                failures = preflight.run_checks(spec, facts)
                if not failures:
                    task_id = await _insert(ctx, tx, values, rule_depth)
                    created = True
    except sqlite3.IntegrityError as exc:  # e.g. a key taken by another process meanwhile
        raise ApiError(409, "conflict", "the task conflicts with one just created; retry") from exc
    if failures:
        await _record_refused(
            ctx,
            spec,
            failures,
            actor=actor,
            client=client,
            rule_depth=rule_depth,
            escalate=not own_input,
        )
        raise preflight_error(failures)
    return await get_task(ctx, task_id), created


async def create_task(
    ctx: AppContext, spec: TaskCreate, *, actor: str, client: str, rule_depth: int = 0
) -> TaskView:
    """Create a task for a rule or the worker (``actor`` such as ``rule:5``) after
    pre-flight validation; raises ApiError 422 listing every failed check
    (``details: [{check, field, message}]``)."""
    view, _ = await _submit(ctx, spec, actor=actor, client=client, rule_depth=rule_depth)
    return view


async def create_in_transaction(
    tx: Tx,
    ctx: AppContext,
    spec: TaskCreate,
    *,
    rule_depth: int = 0,
    decided_by_person: bool = False,
) -> tuple[int, list[Failure]]:
    """Pre-flight and insert inside the caller's transaction (a schedule records its
    firing with the task it makes); returns the new id, or 0 and every failure.
    Recording a refusal is the caller's part, in that same transaction.
    ``decided_by_person``: only for a step of a mission a person approved."""
    values = _values(spec, tx.actor)
    values["decided_by_person"] = decided_by_person
    values["depends_on"] = list(spec.depends_on)
    facts = await preflight.gather(tx.conn, spec, ctx.settings, utcnow())
    failures = preflight.run_checks(spec, facts)
    if failures:
        return 0, failures
    return await _insert(ctx, tx, values, rule_depth), []


async def _insert(ctx: AppContext, tx: Tx, values: dict[str, Any], rule_depth: int) -> int:
    task_id = await store.insert_task(tx.conn, values)
    if values.get("review") is not None:
        spec = values["review"]
        await review_store.set_settings(
            tx.conn,
            task_id,
            reviewer_agent_id=spec.agent_id,
            human=spec.human,
            max_cycles=spec.max_cycles,
        )
    deps: list[int] = values["depends_on"]
    await store.insert_dependencies(tx.conn, task_id, deps)
    await tx.emit(
        EventType.TASK_CREATED,
        "task",
        task_id,
        {
            "title": values["title"][:200],
            "agent_id": values["agent_id"],
            "mission_id": values["mission_id"],
            "mission_step": values["mission_step"],
            "project_id": values["project_id"],
            "priority": values["priority"],
            "depends_on": deps,
        },
        rule_depth=rule_depth,
    )
    # a shell needs a person: held before any run can be queued
    held = await approval.hold_if_needed(
        ctx, tx, task_id, values, decided_by_person=bool(values.get("decided_by_person"))
    )
    conversation_id = await transitions.queue_if_ready(
        tx, task_id, int(values["agent_id"]), rule_depth=rule_depth
    )
    await tx.audit(
        "task.create",
        f"task:{task_id}",
        {
            "agent_id": values["agent_id"],
            "mission_id": values["mission_id"],
            "priority": values["priority"],
            "depends_on": deps,
            "conversation_id": conversation_id,
            "rule_depth": rule_depth,
            "awaiting_approval": held,
        },
    )
    if values["mission_id"] is not None:
        await mission_lifecycle.task_created(tx, int(values["mission_id"]), rule_depth=rule_depth)
    if values.get("follows_conversation_id") is not None:  # the reply answers its question
        await waiting.replied(tx, int(values["follows_conversation_id"]))
    return task_id


async def _record_refused(
    ctx: AppContext,
    spec: TaskCreate,
    failures: list[Failure],
    *,
    actor: str,
    client: str,
    rule_depth: int,
    escalate: bool,
) -> None:
    """Audit, event and (unless a person's own input) escalation of a refused task,
    in a transaction of their own.

    Neither the title nor the description is recorded: they may hold the very
    credential that caused the refusal.
    """
    codes = sorted({f.check for f in failures})
    summary = {
        "checks": codes,
        "agent_id": spec.agent_id,
        "mission_id": spec.mission_id,
        "rule_depth": rule_depth,
    }
    try:
        async with transaction(ctx, actor, client) as tx:
            await tx.audit("task.create", "task", summary, outcome="refused")
            await tx.emit(EventType.TASK_REFUSED, "task", None, summary, rule_depth=rule_depth)
            if not escalate:
                return
            async with tx.conn.execute(
                "SELECT name FROM agents WHERE id = ?", (spec.agent_id,)
            ) as cursor:
                agent = await cursor.fetchone()
            who = f"agent {agent[0]}" if agent else f"agent #{spec.agent_id} (no such agent)"
            await tx.escalate(
                "preflight_refused",
                "task",
                None,
                f"a task for {who} by {actor} failed pre-flight: " + ", ".join(codes),
                {**summary, "actor": actor, "failures": [f.as_dict() for f in failures]},
            )
    except Exception:  # recording must never hide the 422 itself
        log.exception("could not record a refused task")


# --- reading ---------------------------------------------------------------------


async def get_task(ctx: AppContext, task_id: int) -> TaskView:
    row = await store.task_row(ctx.db, task_id)
    if row is None:
        raise not_found()
    deps = await store.dependencies_of(ctx.db, [task_id])
    return task_view(row, deps[task_id])


async def list_tasks(
    ctx: AppContext,
    page: PageParams,
    *,
    status: TaskStatus | None,
    agent_id: int | None,
    mission_id: int | None,
) -> tuple[list[TaskView], int]:
    rows, total = await store.list_tasks(
        ctx.db,
        page,
        status=status.value if status else None,
        agent_id=agent_id,
        mission_id=mission_id,
    )
    return task_views(rows), total


# --- changes -------------------------------------------------------------------------


async def change_task_status(
    ctx: AppContext,
    task_id: int,
    status: TaskStatus,
    *,
    actor: str,
    client: str,
    rule_depth: int = 0,
) -> TaskView:
    """Move a task (409 ``invalid_transition`` if not allowed) with its consequences:
    runs cancelled or queued, dependents queued or blocked, the mission advanced."""
    return await _change_status(
        ctx,
        task_id,
        status,
        actor=actor,
        client=client,
        rule_depth=rule_depth,
        action="task.status",
    )


async def cancel_mission_tasks(tx: Tx, mission_id: int) -> list[int]:
    """A mission was cancelled: cancel its open tasks and their runs (each audited).
    Registered with the missions domain, which imports nothing of this package."""
    cancelled: list[int] = []
    for open_task in await store.open_mission_tasks(tx.conn, mission_id):
        # read each task afresh: cancelling one may have blocked the next
        task = await store.task_row_tx(tx.conn, int(open_task["id"]))
        if task is None or not transitions.allowed(
            TaskStatus(task["status"]), TaskStatus.CANCELLED
        ):
            continue
        await transitions.move(
            tx, task, TaskStatus.CANCELLED, reason=f"mission {mission_id} cancelled"
        )
        await tx.audit("task.cancel", f"task:{task['id']}", {"because": f"mission:{mission_id}"})
        cancelled.append(int(task["id"]))
    return cancelled


async def cancel_task(ctx: AppContext, task_id: int, caller: Caller) -> TaskView:
    return await _change_status(
        ctx,
        task_id,
        TaskStatus.CANCELLED,
        actor=caller.actor,
        client=caller.client,
        action="task.cancel",
    )


async def _change_status(
    ctx: AppContext,
    task_id: int,
    status: TaskStatus,
    *,
    actor: str,
    client: str,
    action: str,
    rule_depth: int = 0,
) -> TaskView:
    async with transaction(ctx, actor, client) as tx:
        row = await store.task_row_tx(tx.conn, task_id)
        if row is None:
            raise not_found()
        current = TaskStatus(row["status"])
        if status is TaskStatus.SUCCEEDED and await review_store.needs_review_tx(tx.conn, task_id):
            raise ApiError(
                409,
                "review_required",
                "this task succeeds only when its review approves it (task page, Review)",
                {"from": current.value, "to": status.value},
            )
        if not transitions.allowed(current, status):
            raise ApiError(
                409,
                "invalid_transition",
                f"a {current.value} task cannot become {status.value}",
                {"from": current.value, "to": status.value},
            )
        summary = await transitions.move(
            tx, row, status, reason=f"task {status.value} by {actor}", rule_depth=rule_depth
        )
        await tx.audit(action, f"task:{task_id}", {**summary, "rule_depth": rule_depth})
    return await get_task(ctx, task_id)


def _update_failures(body: TaskUpdate, fields: set[str]) -> tuple[dict[str, Any], list[Failure]]:
    """The same text rules as creation, for the fields being changed."""
    changes: dict[str, Any] = {}
    failures: list[Failure] = []
    for name in ("title", "description", "priority"):
        if name in fields and getattr(body, name) is None:
            failures.append(Failure("not_null", name, f"{name} cannot be null"))
    if body.title is not None and "title" in fields:
        failures += preflight.title_failures(body.title)
        changes["title"] = body.title.strip()
    if body.description is not None and "description" in fields:
        failures += preflight.description_failures(body.description)
        changes["description"] = body.description
    if body.priority is not None and "priority" in fields:
        failures += preflight.priority_failures(body.priority)
        changes["priority"] = body.priority
    if "due_at" in fields:
        failures += preflight.due_failures(body.due_at, utcnow())
        changes["due_at"] = _normalised_due(body.due_at)
    failures += preflight.credential_failures(
        {k: v for k, v in changes.items() if k in ("title", "description") and v}
    )
    return changes, failures


async def update_task(ctx: AppContext, task_id: int, body: TaskUpdate, caller: Caller) -> TaskView:
    fields = set(body.model_fields_set) - {"version"}
    if not fields:
        raise ApiError(422, "validation_failed", "nothing to change")
    changes, failures = _update_failures(body, fields)
    if failures:
        async with transaction(ctx, caller.actor, caller.client) as tx:
            await tx.audit(
                "task.update",
                f"task:{task_id}",
                {"checks": sorted({f.check for f in failures})},
                outcome="refused",
            )
        raise preflight_error(failures)
    async with transaction(ctx, caller.actor, caller.client) as tx:
        row = await store.task_row_tx(tx.conn, task_id)
        if row is None:
            raise not_found()
        if TaskStatus(row["status"]) not in EDITABLE:
            raise ApiError(
                409, "task_not_editable", f"a {row['status']} task can no longer be edited"
            )
        if not await store.update_task(tx.conn, task_id, body.version, changes):
            raise ApiError(409, "conflict", "the task changed since you read it; reload")
        await tx.audit("task.update", f"task:{task_id}", {"fields": sorted(changes)})
        await tx.emit(EventType.TASK_UPDATED, "task", task_id, {"fields": sorted(changes)})
    return await get_task(ctx, task_id)


async def delete_task(ctx: AppContext, task_id: int, caller: Caller) -> None:
    """Soft delete; refused while the task runs. Its queued run is cancelled and
    tasks waiting on it (unless it had succeeded) are blocked."""
    async with transaction(ctx, caller.actor, caller.client) as tx:
        row = await store.task_row_tx(tx.conn, task_id)
        if row is None:
            raise not_found()
        if row["status"] == TaskStatus.IN_PROGRESS.value:
            raise ApiError(
                409, "task_in_progress", "a running task cannot be deleted; cancel it first"
            )
        if not await store.soft_delete(tx.conn, task_id):  # pragma: no cover - under the lock
            raise ApiError(409, "conflict", "the task changed meanwhile; reload")
        cancelled = await transitions.cancel_run(tx, task_id, f"task deleted by {caller.actor}")
        blocked: list[int] = []
        if row["status"] != TaskStatus.SUCCEEDED.value:
            blocked = await transitions.block_dependents(tx, task_id)
        summary = {"conversation_cancelled": cancelled, "dependents_blocked": blocked}
        await tx.audit("task.delete", f"task:{task_id}", summary)
        await tx.emit(EventType.TASK_UPDATED, "task", task_id, {"deleted": True, **summary})
