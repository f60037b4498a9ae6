"""The rules engine: a background job that fires trigger rules on new events (F8).

It reads the ``events`` table in order, remembering the last id it processed
(it starts from the newest id at start-up, so old events never fire again),
and wakes when the bus says something new was committed, or every
``event_poll_s`` (events written by the worker process are found that way).

Every firing is bounded and recorded in ``rule_firings``:

* ``self_loop``: a rule never fires on an event its own actions caused
  (the event's actor is ``rule:<id>`` or its payload says ``caused_by_rule``);
* ``depth_exceeded``: an event produced by a rule action carries the parent's
  ``rule_depth + 1``; no rule fires on an event at ``rule_max_depth`` or deeper;
* ``blocked:shell_not_approved``: an action would start an agent that has shell
  access (re-checked now, whatever was true at creation) and the rule is not
  approved: the rule is set back to pending and disabled, an escalation opens;
* ``rate_limited``: the rule already ran ``max_firings_per_hour`` times in the
  last hour;
* ``fired`` or ``failed:<code>`` when the actions ran.

A failing action, or any exception at all, is recorded and logged: the engine
never stops because of one event.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from app.agents.service import capability_of
from app.agents.store import agent_row
from app.core.clock import iso, utcnow
from app.core.context import AppContext
from app.core.database import Row
from app.core.errors import ApiError
from app.escalations.store import insert_escalation
from app.events.store import event_dict, events_after, latest_event_id
from app.events.transaction import Tx, transaction
from app.events.types import Category, EventType, Severity
from app.rules import store
from app.rules.matching import EventFacts, all_match
from app.rules.schemas import (
    TRIGGER_FIELDS,
    ActionPreview,
    Approval,
    CreateTaskAction,
    NotifyAction,
    OpenEscalationAction,
    RuleSpec,
    RuleTaskStatus,
    SetTaskStatusAction,
    render,
)
from app.security.principal import Scope
from app.tasks import service as tasks_service
from app.tasks import store as tasks_store
from app.tasks.schemas import TaskCreate, TaskStatus

log = logging.getLogger("mission_control.rules")

BATCH = 200
CLIENT = "rules"

SELF_LOOP = "self_loop"
DEPTH_EXCEEDED = "depth_exceeded"
SHELL_NOT_APPROVED = "blocked:shell_not_approved"
RATE_LIMITED = "rate_limited"
INVALID_RULE = "blocked:invalid_rule"
FIRED = "fired"


def rule_actor(rule_id: int) -> str:
    return f"rule:{rule_id}"


def agent_has_shell(ctx: AppContext, row: Row) -> bool:
    """Whether the agent reaches a shell: its capability with its profile decides
    (app/capability/model.py), so a profile that always runs commands counts."""
    return capability_of(ctx.settings, row).shell


def stored_spec(row: Row) -> RuleSpec:
    """The stored rule, validated again against today's schema (raises if it does not fit)."""
    return RuleSpec.model_validate(
        {
            "name": row["name"],
            "on": row["event_type"],
            "when": json.loads(row["conditions"]),
            "then": json.loads(row["actions"]),
            "max_firings_per_hour": row["max_firings_per_hour"],
        }
    )


# --- gates (shared with the dry run: reads only) -------------------------------------


def caused_by(facts: EventFacts, rule_id: int) -> bool:
    return facts.actor == rule_actor(rule_id) or facts.payload.get("caused_by_rule") == rule_id


async def shell_targets(ctx: AppContext, spec: RuleSpec, facts: EventFacts) -> list[str]:
    """What in this firing would start an agent with shell access."""
    found: list[str] = []
    for action in spec.then:
        if isinstance(action, CreateTaskAction):
            agent = await agent_row(ctx.db, action.agent_id)
            if agent is not None and agent_has_shell(ctx, agent):
                found.append(f"agent:{action.agent_id}")
        elif (
            isinstance(action, SetTaskStatusAction)
            and action.status == RuleTaskStatus.QUEUED
            and facts.subject_id is not None
        ):
            task = await tasks_store.task_row(ctx.db, facts.subject_id)
            if task is None:
                continue
            agent = await agent_row(ctx.db, int(task["agent_id"]))
            if task["needs_shell"] or (agent is not None and agent_has_shell(ctx, agent)):
                found.append(f"task:{facts.subject_id}")
    return found


async def check_gates(
    ctx: AppContext, row: Row, spec: RuleSpec, facts: EventFacts, *, since: str
) -> str | None:
    """Why a matching rule must not run its actions now, or None."""
    rule_id = int(row["id"])
    if caused_by(facts, rule_id):
        return SELF_LOOP
    if facts.rule_depth >= ctx.settings.rule_max_depth:
        return DEPTH_EXCEEDED
    if row["approval"] != Approval.APPROVED.value and await shell_targets(ctx, spec, facts):
        return SHELL_NOT_APPROVED
    if await store.executed_since(ctx.db, rule_id, since) >= int(row["max_firings_per_hour"]):
        return RATE_LIMITED
    return None


async def preview_actions(
    ctx: AppContext, spec: RuleSpec, facts: EventFacts
) -> list[ActionPreview]:
    """What each action would do for this event, without doing it."""
    previews: list[ActionPreview] = []
    for action in spec.then:
        if isinstance(action, NotifyAction):
            title = render(action.title, facts.type, facts.subject_id)
            previews.append(
                ActionPreview(
                    type=action.type,
                    would=f"notify ({action.category.value}, {action.severity.value}): {title}",
                    details={
                        "category": action.category.value,
                        "severity": action.severity.value,
                        "title": title,
                        "body": render(action.body, facts.type, facts.subject_id),
                    },
                )
            )
        elif isinstance(action, CreateTaskAction):
            agent = await agent_row(ctx.db, action.agent_id)
            shell = agent is not None and agent_has_shell(ctx, agent)
            previews.append(
                ActionPreview(
                    type=action.type,
                    would=f"create a {action.priority.value} task for agent {action.agent_id}"
                    + (" (missing)" if agent is None else "")
                    + (" (shell access: needs approval)" if shell else ""),
                    details={
                        "agent_id": action.agent_id,
                        "agent_exists": agent is not None,
                        "agent_shell_access": shell,
                        "title": render(action.title, facts.type, facts.subject_id),
                        "description": render(action.description, facts.type, facts.subject_id),
                        "priority": action.priority.value,
                        "rule_depth": facts.rule_depth + 1,
                    },
                )
            )
        elif isinstance(action, SetTaskStatusAction):
            previews.append(
                ActionPreview(
                    type=action.type,
                    would=f"set task {facts.subject_id} to {action.status.value}",
                    details={"task_id": facts.subject_id, "status": action.status.value},
                )
            )
        else:
            previews.append(
                ActionPreview(
                    type=action.type,
                    would=f"open a '{action.kind}' escalation",
                    details={
                        "kind": action.kind,
                        "reason": render(action.reason, facts.type, facts.subject_id),
                    },
                )
            )
    return previews


# --- actions ---------------------------------------------------------------------------


async def _notify(
    ctx: AppContext, rule_id: int, action: NotifyAction, facts: EventFacts
) -> dict[str, Any]:
    async with transaction(ctx, rule_actor(rule_id), CLIENT) as tx:
        notification_id = await tx.notify(
            action.category,
            action.severity,
            render(action.title, facts.type, facts.subject_id),
            render(action.body, facts.type, facts.subject_id),
        )
    return {"type": action.type, "notification_id": notification_id}


async def _create_task(
    ctx: AppContext, rule_id: int, action: CreateTaskAction, facts: EventFacts
) -> dict[str, Any]:
    created = await tasks_service.create_task(
        ctx,
        TaskCreate(
            title=render(action.title, facts.type, facts.subject_id),
            description=render(action.description, facts.type, facts.subject_id),
            agent_id=action.agent_id,
            priority=action.priority.value,
        ),
        actor=rule_actor(rule_id),
        client=CLIENT,
        rule_depth=facts.rule_depth + 1,
    )
    return {"type": action.type, "task_id": getattr(created, "id", None)}


async def _set_task_status(
    ctx: AppContext, rule_id: int, action: SetTaskStatusAction, facts: EventFacts
) -> dict[str, Any]:
    if facts.subject_id is None:
        raise ApiError(422, "no_subject_task", "the event names no task")
    await tasks_service.change_task_status(
        ctx,
        facts.subject_id,
        TaskStatus(action.status.value),
        actor=rule_actor(rule_id),
        client=CLIENT,
        rule_depth=facts.rule_depth + 1,
    )
    return {"type": action.type, "task_id": facts.subject_id, "status": action.status.value}


async def _open_escalation(
    ctx: AppContext, rule_id: int, action: OpenEscalationAction, facts: EventFacts
) -> dict[str, Any]:
    """Like ``Tx.escalate``, but the event carries the rule depth and its cause."""
    reason = render(action.reason, facts.type, facts.subject_id)
    depth = facts.rule_depth + 1
    async with transaction(ctx, rule_actor(rule_id), CLIENT) as tx:
        escalation_id = await insert_escalation(
            tx.conn,
            kind=action.kind,
            subject_type="rule",
            subject_id=rule_id,
            reason=reason,
            details={"event_type": facts.type, "event_subject_id": facts.subject_id},
        )
        await tx.emit(
            EventType.ESCALATION_OPENED,
            "escalation",
            escalation_id,
            {
                "kind": action.kind,
                "subject_type": "rule",
                "subject_id": rule_id,
                "reason": reason,
                "caused_by_rule": rule_id,
            },
            min_scope=Scope.OPERATE,
            rule_depth=depth,
        )
        await tx.notify(
            Category.ESCALATION, Severity.WARNING, f"Needs a human: {action.kind}", reason
        )
    return {"type": action.type, "escalation_id": escalation_id}


async def run_action(
    ctx: AppContext, rule_id: int, action: Any, facts: EventFacts
) -> dict[str, Any]:
    if isinstance(action, NotifyAction):
        return await _notify(ctx, rule_id, action, facts)
    if isinstance(action, CreateTaskAction):
        return await _create_task(ctx, rule_id, action, facts)
    if isinstance(action, SetTaskStatusAction):
        return await _set_task_status(ctx, rule_id, action, facts)
    if isinstance(action, OpenEscalationAction):
        return await _open_escalation(ctx, rule_id, action, facts)
    raise ApiError(422, "unknown_action", "not an allowed action")  # unreachable by schema


# --- recording -------------------------------------------------------------------------


async def _record(
    tx: Tx,
    *,
    rule_id: int,
    event_id: int,
    facts: EventFacts,
    outcome: str,
    details: dict[str, Any] | None = None,
) -> None:
    await store.insert_firing(
        tx.conn, rule_id=rule_id, event_id=event_id, depth=facts.rule_depth, outcome=outcome
    )
    await tx.audit(
        "rule.fire",
        store.rule_target(rule_id),
        {"event_id": event_id, "depth": facts.rule_depth, "outcome": outcome, **(details or {})},
        outcome="ok" if outcome == FIRED else outcome.split(":", 1)[0],
    )


async def _emit(
    tx: Tx,
    event_type: EventType,
    *,
    rule_id: int,
    event_id: int,
    facts: EventFacts,
    outcome: str,
    extra: dict[str, Any] | None = None,
) -> None:
    await tx.emit(
        event_type,
        "rule",
        rule_id,
        {
            "rule_id": rule_id,
            "event_id": event_id,
            "event_type": facts.type,
            "outcome": outcome,
            "caused_by_rule": rule_id,
            **(extra or {}),
        },
        min_scope=Scope.OPERATE,
        rule_depth=facts.rule_depth + 1,
    )


async def _block(
    ctx: AppContext, row: Row, event_id: int, facts: EventFacts, outcome: str, since: str
) -> None:
    rule_id = int(row["id"])
    first_this_hour = await store.outcome_since(ctx.db, rule_id, outcome, since) == 0
    async with transaction(ctx, rule_actor(rule_id), CLIENT) as tx:
        if outcome == SELF_LOOP:
            await _record(tx, rule_id=rule_id, event_id=event_id, facts=facts, outcome=outcome)
            return
        await _record(tx, rule_id=rule_id, event_id=event_id, facts=facts, outcome=outcome)
        await _emit(
            tx,
            EventType.RULE_BLOCKED,
            rule_id=rule_id,
            event_id=event_id,
            facts=facts,
            outcome=outcome,
        )
        if outcome == SHELL_NOT_APPROVED:
            # Back to the approval flow: pending and disabled until another admin approves.
            await store.update_rule(
                tx.conn,
                rule_id,
                int(row["version"]),
                {
                    "approval": Approval.PENDING.value,
                    "approved_by": None,
                    "approved_at": None,
                    "enabled": False,
                },
            )
            await tx.escalate(
                "rule_blocked",
                "rule",
                rule_id,
                f"Rule {rule_id} ({row['name']}) would start an agent with shell access"
                " without approval; it was disabled and needs an admin's approval.",
                {"event_id": event_id},
            )
            await tx.security_alert(
                f"Rule {rule_id} blocked: shell access without approval",
                f"Trigger rule {rule_id} ({row['name']}) matched event {event_id} but its"
                " actions would start an agent with shell access and it is not approved."
                " Nothing ran; the rule is disabled and pending approval.",
            )
        elif first_this_hour and outcome in (RATE_LIMITED, DEPTH_EXCEEDED, INVALID_RULE):
            await tx.escalate(
                f"rule_{outcome.split(':')[-1]}",
                "rule",
                rule_id,
                f"Rule {rule_id} ({row['name']}) was stopped: {outcome}.",
                {"event_id": event_id},
            )


async def _fire(ctx: AppContext, row: Row, spec: RuleSpec, event_id: int, facts: EventFacts) -> str:
    rule_id = int(row["id"])
    outcome = FIRED
    results: list[dict[str, Any]] = []
    for index, action in enumerate(spec.then):
        try:
            results.append(await run_action(ctx, rule_id, action, facts))
        except ApiError as exc:
            outcome = f"failed:{exc.code}"
            results.append({"type": action.type, "failed": exc.code, "index": index})
            break
        except Exception:
            log.exception("rule action failed", extra={"rule_id": rule_id, "event_id": event_id})
            outcome = "failed:internal_error"
            results.append({"type": action.type, "failed": "internal_error", "index": index})
            break
    async with transaction(ctx, rule_actor(rule_id), CLIENT) as tx:
        await _record(
            tx,
            rule_id=rule_id,
            event_id=event_id,
            facts=facts,
            outcome=outcome,
            details={"actions": results},
        )
        await _emit(
            tx,
            EventType.RULE_FIRED,
            rule_id=rule_id,
            event_id=event_id,
            facts=facts,
            outcome=outcome,
            extra={"actions": results},
        )
        if outcome != FIRED:
            await tx.notify(
                Category.RULE,
                Severity.WARNING,
                f"Rule {rule_id} failed: {outcome.split(':', 1)[1]}"[:200],
                f"Trigger rule {rule_id} ({row['name']}) matched event {event_id};"
                f" action {len(results)} failed with {outcome}.",
            )
    return outcome


async def consider(ctx: AppContext, row: Row, event: dict[str, Any]) -> str | None:
    """Decide and act for one rule and one event; the outcome, or None if no match."""
    facts = EventFacts.from_event(event)
    event_id = int(event["id"])
    since = iso(utcnow() - timedelta(hours=1))
    try:
        spec = stored_spec(row)
    except ValidationError:
        await _block(ctx, row, event_id, facts, INVALID_RULE, since)
        return INVALID_RULE
    if spec.on.value != facts.type or not all_match(spec.when, facts):
        return None
    blocked = await check_gates(ctx, row, spec, facts, since=since)
    if blocked is not None:
        await _block(ctx, row, event_id, facts, blocked, since)
        return blocked
    return await _fire(ctx, row, spec, event_id, facts)


async def handle_event(ctx: AppContext, event: dict[str, Any]) -> None:
    try:
        if EventType(event["type"]) not in TRIGGER_FIELDS:
            return
    except ValueError:
        return
    for row in await store.live_rules_for(ctx.db, str(event["type"])):
        try:
            await consider(ctx, row, event)
        except Exception:
            log.exception(
                "rule evaluation failed", extra={"rule_id": row["id"], "event_id": event["id"]}
            )


async def process_pending(ctx: AppContext, state: EngineState) -> None:
    """Handle every event after ``state.last_id``, moving it forward event by event."""
    assert state.last_id is not None
    while True:
        rows = await events_after(ctx.db, state.last_id, Scope.ADMIN, limit=BATCH)
        for row in rows:
            try:
                await handle_event(ctx, event_dict(row))
            except Exception:
                log.exception("rules engine failed on an event", extra={"event_id": row["id"]})
            state.last_id = int(row["id"])
        if len(rows) < BATCH:
            return


# --- the job ---------------------------------------------------------------------------


class EngineState:
    """Where the engine is (for tests and health): ``last_id`` is None until it started."""

    def __init__(self) -> None:
        self.last_id: int | None = None
        self.started = asyncio.Event()


_STATES: dict[int, EngineState] = {}


def engine_state(ctx: AppContext) -> EngineState:
    return _STATES.setdefault(id(ctx), EngineState())


async def rules_engine(ctx: AppContext) -> None:
    """Background job: fire rules on new events, forever."""
    state = engine_state(ctx)
    try:
        while state.last_id is None:
            try:
                state.last_id = await latest_event_id(ctx.db)
            except Exception:
                log.exception("rules engine could not start; retrying")
                await asyncio.sleep(ctx.settings.event_poll_s)
        state.started.set()
        while True:
            # Start listening before reading, so a commit made while we read wakes us.
            waiter = asyncio.create_task(ctx.bus.wait(ctx.settings.event_poll_s))
            try:
                await asyncio.sleep(0)
                try:
                    await process_pending(ctx, state)
                except Exception:
                    log.exception("rules engine pass failed")
                await waiter
            finally:
                waiter.cancel()
    finally:
        _STATES.pop(id(ctx), None)
