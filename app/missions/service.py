"""The rules of missions (F17): bounded proposals, human approval, lifecycle.

Lifecycle::

    proposed -> approved | rejected | cancelled
    approved -> running (its first task is created) | cancelled
    running  -> succeeded (every step has a succeeded task)
              | failed (one of its tasks failed, or it went over a bound)
              | cancelled (its open tasks and runs are cancelled too)

Approval (``app.missions.approval``) needs a person logged in to the web UI
with scope operate or higher; who may approve their own proposal is decided in
one place, ``app.approvals.gate`` (two-person or one-owner mode).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from app.access.caller import Caller
from app.agents.store import agent_row_tx
from app.approvals.links import mission_approval_link
from app.core.context import AppContext
from app.core.database import Row
from app.core.errors import ApiError
from app.core.pagination import PageParams
from app.events.transaction import Tx, transaction
from app.events.types import Category, EventType, Severity
from app.missions import store
from app.missions.schemas import (
    BoundsView,
    MissionCreate,
    MissionDecision,
    MissionStatus,
    MissionStepView,
    MissionView,
)
from app.security.credential_gate import contains_credential, redact

TRANSITIONS: dict[MissionStatus, frozenset[MissionStatus]] = {
    MissionStatus.PROPOSED: frozenset(
        {MissionStatus.APPROVED, MissionStatus.REJECTED, MissionStatus.CANCELLED}
    ),
    MissionStatus.APPROVED: frozenset({MissionStatus.RUNNING, MissionStatus.CANCELLED}),
    MissionStatus.RUNNING: frozenset(
        {MissionStatus.SUCCEEDED, MissionStatus.FAILED, MissionStatus.CANCELLED}
    ),
}

_EVENTS = {
    MissionStatus.APPROVED: EventType.MISSION_APPROVED,
    MissionStatus.REJECTED: EventType.MISSION_REJECTED,
    MissionStatus.RUNNING: EventType.MISSION_STARTED,
    MissionStatus.SUCCEEDED: EventType.MISSION_SUCCEEDED,
    MissionStatus.FAILED: EventType.MISSION_FAILED,
    MissionStatus.CANCELLED: EventType.MISSION_CANCELLED,
}


def mission_view(row: Row) -> MissionView:
    steps = json.loads(row["steps"])
    return MissionView(
        id=row["id"],
        title=row["title"],
        goal=row["goal"],
        steps=[MissionStepView(index=i, **step) for i, step in enumerate(steps, start=1)],
        status=MissionStatus(row["status"]),
        proposed_by=row["proposed_by"],
        bounds=BoundsView(
            cost_usd=row["bound_cost_usd"],
            steps=row["bound_steps"],
            step_minutes=row["bound_step_minutes"],
            tokens=row["bound_tokens"],
        ),
        spent_cost_usd=float(row["spent_cost_usd"]),
        spent_tokens=int(row["spent_tokens"]),
        tasks_created=int(row["tasks_created"]),
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        decision_comment=row["decision_comment"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def not_found() -> ApiError:
    return ApiError(404, "not_found", "no such mission")


# --- proposals ----------------------------------------------------------------


def bound_problems(
    spec: MissionCreate, ctx: AppContext
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The effective bounds, and every bound above its ceiling (F17)."""
    s = ctx.settings
    ceilings: dict[str, float | int] = {
        "cost_usd": s.mission_max_cost_usd,
        "steps": s.mission_max_steps,
        "step_minutes": s.mission_max_step_minutes,
        "tokens": s.mission_max_tokens,
    }
    requested = spec.bounds.model_dump()
    effective: dict[str, Any] = {}
    problems: list[dict[str, Any]] = []
    for name, ceiling in ceilings.items():
        value = requested[name]
        effective[name] = ceiling if value is None else value
        if value is not None and value > ceiling:
            problems.append(
                {
                    "check": "bound_within_ceiling",
                    "bound": name,
                    "ceiling": ceiling,
                    "requested": value,
                    "message": f"{name} {value} is above the ceiling {ceiling}",
                }
            )
    if len(spec.steps) > effective["steps"]:
        problems.append(
            {
                "check": "steps_within_bound",
                "bound": "steps",
                "ceiling": effective["steps"],
                "requested": len(spec.steps),
                "message": f"{len(spec.steps)} steps listed; the bound is {effective['steps']}",
            }
        )
    return effective, problems


def text_problems(spec: MissionCreate) -> list[dict[str, Any]]:
    texts = {"title": spec.title, "goal": spec.goal}
    for i, step in enumerate(spec.steps):
        texts[f"steps[{i}].title"] = step.title
        texts[f"steps[{i}].instructions"] = step.instructions
    return [
        {
            "check": "no_credentials_in_text",
            "field": name,
            "message": "this text contains what looks like a credential; remove it",
        }
        for name, text in texts.items()
        if text and contains_credential(text)
    ]


async def agent_problems(tx: Tx, spec: MissionCreate) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    for i, step in enumerate(spec.steps):
        row = await agent_row_tx(tx.conn, step.agent_id)
        if row is None:
            problems.append(
                {
                    "check": "agent_exists",
                    "field": f"steps[{i}].agent_id",
                    "message": f"there is no agent {step.agent_id}",
                }
            )
        elif row["status"] != "active":
            problems.append(
                {
                    "check": "agent_active",
                    "field": f"steps[{i}].agent_id",
                    "message": f"agent {row['name']} is {row['status']}: resume it or choose"
                    " another agent",
                }
            )
    return problems


async def propose_mission(ctx: AppContext, spec: MissionCreate, caller: Caller) -> MissionView:
    """Store a proposal, or refuse it (422 ``proposal_refused`` naming every problem).

    A person's own input at a form (a login session) that is refused is audited but
    opens no escalation, even for a bound above its ceiling."""
    own_input = caller.principal.kind == "session"
    effective, problems = bound_problems(spec, ctx)
    problems.extend(text_problems(spec))
    async with transaction(ctx, caller.actor, caller.client) as tx:
        problems.extend(await agent_problems(tx, spec))
        mission_id = 0
        if not problems:
            mission_id = await store.insert_mission(
                tx.conn,
                {
                    "title": spec.title,
                    "goal": spec.goal,
                    "steps": [step.model_dump() for step in spec.steps],
                    "proposed_by": caller.actor,
                    "bound_cost_usd": float(effective["cost_usd"]),
                    "bound_steps": int(effective["steps"]),
                    "bound_step_minutes": int(effective["step_minutes"]),
                    "bound_tokens": int(effective["tokens"]),
                },
            )
            await tx.audit(
                "mission.propose",
                f"mission:{mission_id}",
                {"steps": len(spec.steps), "bounds": effective},
            )
            await tx.emit(
                EventType.MISSION_PROPOSED,
                "mission",
                mission_id,
                {"title": spec.title, "steps": len(spec.steps), "bounds": effective},
            )
            await tx.notify(
                Category.MISSION,
                Severity.INFO,
                f"Mission waiting for approval: {spec.title}"[:200],
                f"{caller.actor} proposed it; open it to approve or reject it.",
                link=mission_approval_link(mission_id),
            )
    if problems:
        await _record_refused_proposal(ctx, caller, problems, escalate=not own_input)
        raise ApiError(422, "proposal_refused", "the mission proposal was refused", problems)
    row = await store.mission_row(ctx.db, mission_id)
    if row is None:  # pragma: no cover - just written
        raise not_found()
    return mission_view(row)


async def _record_refused_proposal(
    ctx: AppContext, caller: Caller, problems: list[dict[str, Any]], *, escalate: bool
) -> None:
    """Audit the refusal in its own transaction; a bound hit by a token, rule or
    agent also needs a human (F21). A person at a form sees it in place."""
    checks = sorted({p["check"] for p in problems})
    bounds = [p for p in problems if "bound" in p]
    async with transaction(ctx, caller.actor, caller.client) as tx:
        await tx.audit("mission.propose", "mission", {"checks": checks}, outcome="refused")
        if bounds and escalate:
            await tx.escalate(
                "mission_bound_exceeded",
                "mission",
                None,
                f"a mission proposal by {caller.actor} asked for more than the bounds allow",
                {"bounds": bounds},
            )


# --- reading --------------------------------------------------------------------


async def get_mission(ctx: AppContext, mission_id: int) -> MissionView:
    row = await store.mission_row(ctx.db, mission_id)
    if row is None:
        raise not_found()
    return mission_view(row)


async def list_missions(
    ctx: AppContext, page: PageParams, status: MissionStatus | None
) -> tuple[list[MissionView], int]:
    rows, total = await store.list_missions(ctx.db, page, status.value if status else None)
    return [mission_view(r) for r in rows], total


# --- decisions ----------------------------------------------------------------------


def _invalid(current: MissionStatus, wanted: MissionStatus) -> ApiError:
    return ApiError(
        409,
        "invalid_transition",
        f"a {current.value} mission cannot become {wanted.value}",
        {"from": current.value, "to": wanted.value},
    )


async def _load_for_change(
    tx: Tx, mission_id: int, wanted: MissionStatus, version: int | None
) -> Row:
    row = await store.mission_row_tx(tx.conn, mission_id)
    if row is None:
        raise not_found()
    current = MissionStatus(row["status"])
    if wanted not in TRANSITIONS.get(current, frozenset()):
        raise _invalid(current, wanted)
    if version is not None and version != row["version"]:
        raise ApiError(409, "conflict", "the mission changed since you read it; reload")
    return row


async def _move(
    tx: Tx,
    row: Row,
    wanted: MissionStatus,
    *,
    decided_by: str | None = None,
    comment: str | None = None,
    payload: dict[str, Any] | None = None,
    rule_depth: int = 0,
) -> None:
    moved = await store.set_status(
        tx.conn,
        int(row["id"]),
        from_status=str(row["status"]),
        to_status=wanted.value,
        decided_by=decided_by,
        comment=comment,
    )
    if not moved:  # pragma: no cover - the write lock makes this unreachable
        raise ApiError(409, "conflict", "the mission changed meanwhile; reload")
    await tx.audit(
        f"mission.{wanted.value}",
        f"mission:{row['id']}",
        {"from": row["status"], "to": wanted.value, **(payload or {})},
    )
    await tx.emit(
        _EVENTS[wanted],
        "mission",
        int(row["id"]),
        {"from": row["status"], "to": wanted.value, "title": row["title"], **(payload or {})},
        rule_depth=rule_depth,
    )


def _clean_comment(comment: str) -> str:
    """Comments are stored redacted: a pasted secret never reaches the database."""
    return redact(comment).text if comment else comment


async def reject_mission(
    ctx: AppContext, mission_id: int, decision: MissionDecision, caller: Caller
) -> MissionView:
    async with transaction(ctx, caller.actor, caller.client) as tx:
        row = await _load_for_change(tx, mission_id, MissionStatus.REJECTED, decision.version)
        await _move(
            tx,
            row,
            MissionStatus.REJECTED,
            decided_by=caller.actor,
            comment=_clean_comment(decision.comment),
        )
        await tx.notify(
            Category.MISSION,
            Severity.INFO,
            f"Mission rejected: {row['title']}",
            f"rejected by {caller.actor}",
        )
    return await get_mission(ctx, mission_id)


#: cancels a mission's open tasks and their runs, inside the caller's transaction,
#: and returns their ids; the task domain registers it (its service module), so
#: that nothing in this package imports the task domain
OpenWorkCanceller = Callable[[Tx, int], Awaitable[list[int]]]
_open_work_canceller: list[OpenWorkCanceller] = []


def register_open_work_canceller(canceller: OpenWorkCanceller) -> None:
    """The task domain says how a cancelled mission's open tasks are cancelled."""
    _open_work_canceller[:] = [canceller]


async def cancel_mission(
    ctx: AppContext, mission_id: int, decision: MissionDecision, caller: Caller
) -> MissionView:
    """Cancel a mission; a running one's open tasks and their runs are cancelled too.

    Fails closed: with no canceller registered the mission is not cancelled (its
    tasks would otherwise go on running)."""
    if not _open_work_canceller:
        raise RuntimeError("no canceller of a mission's open tasks is registered")
    async with transaction(ctx, caller.actor, caller.client) as tx:
        row = await _load_for_change(tx, mission_id, MissionStatus.CANCELLED, decision.version)
        cancelled_tasks = await _open_work_canceller[0](tx, mission_id)
        await _move(
            tx,
            row,
            MissionStatus.CANCELLED,
            decided_by=caller.actor,
            comment=_clean_comment(decision.comment),
            payload={"tasks_cancelled": cancelled_tasks},
        )
    return await get_mission(ctx, mission_id)


# --- ending a mission from outside a transaction ----------------------------------
# (the task domain and the worker move a mission through app/missions/lifecycle.py)


async def end_mission(
    ctx: AppContext,
    mission_id: int,
    status: MissionStatus,
    *,
    actor: str,
    client: str,
    reason: str,
) -> MissionView:
    """End a running mission in a transaction of its own (FAILED opens a
    ``mission_failed`` escalation). The worker does not use it: it fails a mission
    over its bound inside the run's transaction
    (:func:`app.missions.lifecycle.fail_if_over_bound`)."""
    if status not in (MissionStatus.SUCCEEDED, MissionStatus.FAILED):
        raise ValueError("a mission ends succeeded or failed")
    async with transaction(ctx, actor, client) as tx:
        row = await _load_for_change(tx, mission_id, status, None)
        await _move(tx, row, status, payload={"reason": reason[:500]})
        if status is MissionStatus.FAILED:
            await tx.escalate(
                "mission_failed", "mission", mission_id, reason[:500], {"title": row["title"]}
            )
    return await get_mission(ctx, mission_id)
