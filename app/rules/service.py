"""Trigger rules: create, change, approve, delete, dry-run (F8).

Step 4 of the attack chain is "plant a rule that pipes a payload through an
agent with shell access". The barriers here:

* a rule is a typed schema (``app.rules.schemas``); nothing else is stored;
* creating, changing, enabling and deleting need ``admin``, are audited and
  notify; a rule that reaches a shell agent raises a security alert;
* a rule whose ``create_task`` reaches an agent with shell access is stored
  disabled with ``approval = pending`` (checked at creation, at every change
  and again by the engine at every firing); enabling it is refused (409) until
  it is approved (``app.rules.approval``) at the exact version the approver read,
  by whom ``app.approvals.gate`` allows: another admin who is no author of the
  rule (two-person mode), or the only admin after a step-up and a cooling-off
  period (one-owner mode).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import aiosqlite
from pydantic import ValidationError

from app.access.caller import Caller
from app.agents.store import agent_row_tx
from app.approvals.links import rule_approval_link
from app.core.clock import iso, now_iso, utcnow
from app.core.context import AppContext
from app.core.database import Row
from app.core.errors import ApiError
from app.core.pagination import PageParams
from app.events.transaction import Tx, transaction
from app.events.types import Category, EventType, Severity
from app.rules import store
from app.rules.engine import agent_has_shell, check_gates, preview_actions, stored_spec
from app.rules.matching import EventFacts, evaluate
from app.rules.schemas import (
    Approval,
    ConditionResult,
    DryRunRequest,
    DryRunResult,
    FiringView,
    RuleCreate,
    RuleSpec,
    RuleUpdate,
    RuleView,
)


def rule_view(row: Row) -> RuleView:
    return RuleView(
        id=row["id"],
        name=row["name"],
        on=row["event_type"],
        when=json.loads(row["conditions"]),
        then=json.loads(row["actions"]),
        enabled=bool(row["enabled"]),
        approval=Approval(row["approval"]),
        approved_by=row["approved_by"],
        approved_at=row["approved_at"],
        max_firings_per_hour=row["max_firings_per_hour"],
        created_by=row["created_by"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def firing_view(row: Row) -> FiringView:
    return FiringView(
        id=row["id"],
        rule_id=row["rule_id"],
        event_id=row["event_id"],
        depth=row["depth"],
        outcome=row["outcome"],
        fired_at=row["fired_at"],
    )


def _stored_behaviour(row: Row) -> dict[str, Any]:
    return {
        "on": row["event_type"],
        "when": json.loads(row["conditions"]),
        "then": json.loads(row["actions"]),
    }


def _validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors without the offending input (it may hold a secret)."""
    return [
        {
            "loc": ["body", *(str(part) for part in err.get("loc", ()))],
            "type": str(err.get("type", "invalid")),
            "message": str(err.get("msg", "invalid value")),
        }
        for err in exc.errors()
    ]


async def _shell_agents(ctx: AppContext, conn: aiosqlite.Connection, spec: RuleSpec) -> list[int]:
    """The agents with shell access that the rule's actions would start.

    An agent that does not exist is a 422: a rule never names a ghost agent
    that could later be created with shell access under that id unnoticed.
    """
    shell: list[int] = []
    for index, action in enumerate(spec.then):
        agent_id = getattr(action, "agent_id", None)
        if agent_id is None:
            continue
        row = await agent_row_tx(conn, agent_id)
        if row is None:
            raise ApiError(
                422,
                "unknown_agent",
                f"agent {agent_id} does not exist",
                [
                    {
                        "loc": ["body", "then", str(index), "agent_id"],
                        "type": "unknown_agent",
                        "message": "no such agent",
                    }
                ],
            )
        if agent_has_shell(ctx, row) and agent_id not in shell:
            shell.append(agent_id)
    return shell


def _summary(spec: RuleSpec, *, enabled: bool, approval: Approval) -> dict[str, Any]:
    return {
        **spec.model_dump(mode="json"),
        "enabled": enabled,
        "approval": approval.value,
    }


async def _announce(
    tx: Tx,
    *,
    rule_id: int,
    name: str,
    verb: str,
    shell: list[int],
    approval: Approval,
) -> None:
    await tx.notify(
        Category.RULE,
        Severity.WARNING if shell else Severity.INFO,
        f"Rule {verb}: {name}"[:200],
        f"{tx.actor} {verb} trigger rule {rule_id} ({name}); approval: {approval.value}.",
        link=rule_approval_link(rule_id) if approval == Approval.PENDING else None,
    )
    if shell:
        await tx.security_alert(
            f"Rule {rule_id} reaches an agent with shell access",
            f"{tx.actor} {verb} trigger rule {rule_id} ({name}); its actions start agent(s)"
            f" {shell}, which have shell access. Approval: {approval.value}"
            + (
                "; it stays disabled until it is approved." if approval == Approval.PENDING else "."
            ),
            link=rule_approval_link(rule_id) if approval == Approval.PENDING else None,
        )


# --- reads ---------------------------------------------------------------------------


async def get_rule(ctx: AppContext, rule_id: int) -> RuleView:
    row = await store.rule_row(ctx.db, rule_id)
    if row is None:
        raise ApiError(404, "not_found", "no such rule")
    return rule_view(row)


async def list_rules(
    ctx: AppContext, page: PageParams, *, enabled: bool | None, event_type: str | None
) -> tuple[list[RuleView], int]:
    rows, total = await store.list_rules(ctx.db, page, enabled=enabled, event_type=event_type)
    return [rule_view(r) for r in rows], total


async def list_firings(
    ctx: AppContext, rule_id: int, page: PageParams
) -> tuple[list[FiringView], int]:
    if await store.rule_row(ctx.db, rule_id) is None:
        raise ApiError(404, "not_found", "no such rule")
    rows, total = await store.list_firings(ctx.db, rule_id, page)
    return [firing_view(r) for r in rows], total


# --- writes --------------------------------------------------------------------------


async def create_rule(ctx: AppContext, body: RuleCreate, caller: Caller) -> RuleView:
    spec = RuleSpec.model_validate(body.model_dump(exclude={"enabled"}))
    async with transaction(ctx, caller.actor, caller.client) as tx:
        shell = await _shell_agents(ctx, tx.conn, spec)
        approval = Approval.PENDING if shell else Approval.NOT_NEEDED
        enabled = body.enabled and not shell
        behaviour = spec.behaviour()
        rule_id = await store.insert_rule(
            tx.conn,
            {
                "name": spec.name,
                "event_type": behaviour["on"],
                "conditions": behaviour["when"],
                "actions": behaviour["then"],
                "enabled": enabled,
                "approval": approval.value,
                "max_firings_per_hour": spec.max_firings_per_hour,
                "created_by": caller.actor,
            },
        )
        target = store.rule_target(rule_id)
        await tx.audit(
            "rule.create",
            target,
            {**_summary(spec, enabled=enabled, approval=approval), "shell_agents": shell},
        )
        await tx.emit(
            EventType.RULE_CREATED,
            "rule",
            rule_id,
            {"name": spec.name, "on": behaviour["on"], "approval": approval.value},
        )
        await _announce(
            tx, rule_id=rule_id, name=spec.name, verb="created", shell=shell, approval=approval
        )
    return await get_rule(ctx, rule_id)


async def update_rule(ctx: AppContext, rule_id: int, body: RuleUpdate, caller: Caller) -> RuleView:
    patch = body.model_dump(mode="json", exclude_unset=True, exclude={"version", "enabled"})
    async with transaction(ctx, caller.actor, caller.client) as tx:
        row = await store.rule_row_tx(tx.conn, rule_id)
        if row is None:
            raise ApiError(404, "not_found", "no such rule")
        if row["version"] != body.version:
            raise ApiError(
                409,
                "conflict",
                "the rule was changed since you read it; reload and retry",
                {"current_version": row["version"]},
            )
        before = {
            "name": row["name"],
            **_stored_behaviour(row),
            "max_firings_per_hour": row["max_firings_per_hour"],
        }
        try:
            spec = RuleSpec.model_validate({**before, **patch})
        except ValidationError as exc:
            raise ApiError(
                422, "validation_failed", "the rule is not valid", _validation_details(exc)
            ) from None
        shell = await _shell_agents(ctx, tx.conn, spec)
        behaviour_changed = spec.behaviour() != _stored_behaviour(row)
        current = Approval(row["approval"])
        if not shell:
            approval = Approval.NOT_NEEDED
        elif current == Approval.APPROVED and not behaviour_changed:
            approval = Approval.APPROVED
        else:
            approval = Approval.PENDING
        enabled = bool(row["enabled"]) if body.enabled is None else body.enabled
        if approval == Approval.PENDING:
            if body.enabled:
                raise ApiError(
                    409,
                    "approval_pending",
                    "this rule starts an agent with shell access and needs the approval of"
                    " another admin before it can be enabled",
                    {"shell_agents": shell},
                )
            enabled = False
        behaviour = spec.behaviour()
        changes: dict[str, Any] = {
            "name": spec.name,
            "event_type": behaviour["on"],
            "conditions": behaviour["when"],
            "actions": behaviour["then"],
            "max_firings_per_hour": spec.max_firings_per_hour,
            "enabled": enabled,
            "approval": approval.value,
        }
        if approval != Approval.APPROVED:
            changes["approved_by"] = None
            changes["approved_at"] = None
        if not await store.update_rule(tx.conn, rule_id, body.version, changes):
            raise ApiError(409, "conflict", "the rule was changed since you read it")
        target = store.rule_target(rule_id)
        await tx.audit(
            "rule.update",
            target,
            {
                "before": {
                    **before,
                    "enabled": bool(row["enabled"]),
                    "approval": row["approval"],
                },
                "after": _summary(spec, enabled=enabled, approval=approval),
                "shell_agents": shell,
            },
        )
        await tx.emit(
            EventType.RULE_UPDATED,
            "rule",
            rule_id,
            {"name": spec.name, "enabled": enabled, "approval": approval.value},
        )
        verb = "changed"
        if enabled != bool(row["enabled"]):
            verb = "enabled" if enabled else "disabled"
        await _announce(
            tx, rule_id=rule_id, name=spec.name, verb=verb, shell=shell, approval=approval
        )
    return await get_rule(ctx, rule_id)


async def delete_rule(ctx: AppContext, rule_id: int, caller: Caller) -> None:
    async with transaction(ctx, caller.actor, caller.client) as tx:
        row = await store.rule_row_tx(tx.conn, rule_id)
        if row is None:
            raise ApiError(404, "not_found", "no such rule")
        changes = {"enabled": False, "deleted_at": now_iso()}
        if not await store.update_rule(tx.conn, rule_id, row["version"], changes):
            raise ApiError(409, "conflict", "the rule was changed meanwhile; retry")
        await tx.audit(
            "rule.delete", store.rule_target(rule_id), {"name": row["name"], "soft": True}
        )
        await tx.emit(
            EventType.RULE_UPDATED, "rule", rule_id, {"name": row["name"], "deleted": True}
        )
        await tx.notify(
            Category.RULE,
            Severity.INFO,
            f"Rule deleted: {row['name']}"[:200],
            f"{caller.actor} deleted trigger rule {rule_id}.",
        )


# --- dry run ---------------------------------------------------------------------------


async def dry_run(ctx: AppContext, rule_id: int, body: DryRunRequest) -> DryRunResult:
    """What the event would do: reads only, never a write."""
    row = await store.rule_row(ctx.db, rule_id)
    if row is None:
        raise ApiError(404, "not_found", "no such rule")
    try:
        spec = stored_spec(row)
    except ValidationError:
        raise ApiError(
            409, "invalid_rule", "the stored rule no longer validates; change it first"
        ) from None
    event = body.event
    facts = EventFacts(
        type=event.type.value,
        subject_id=event.subject_id,
        actor=event.actor,
        rule_depth=event.rule_depth,
        payload=event.payload,
    )
    type_matches = spec.on.value == facts.type
    results = evaluate(spec.when, facts)
    conditions = [
        ConditionResult(field=c.field, op=c.op.value, value=c.value, actual=actual, matched=matched)
        for c, (actual, matched) in zip(spec.when, results, strict=True)
    ]
    matched = type_matches and all(m for _, m in results)
    blocked: str | None = None
    if not row["enabled"]:
        blocked = "disabled"
    if row["approval"] == Approval.PENDING.value:
        blocked = "approval_pending"
    if blocked is None and matched:
        since = iso(utcnow() - timedelta(hours=1))
        blocked = await check_gates(ctx, row, spec, facts, since=since)
    return DryRunResult(
        rule_id=rule_id,
        event_type_matches=type_matches,
        conditions=conditions,
        matched=matched,
        would_fire=matched and blocked is None,
        blocked_reason=blocked,
        depth=facts.rule_depth,
        actions=await preview_actions(ctx, spec, facts),
    )
