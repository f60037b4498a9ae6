"""Rules of escalations (F21): open -> acknowledged -> resolved, each audited
and published on the live feed."""

from __future__ import annotations

import json

from app.access.caller import Caller
from app.core.context import AppContext
from app.core.database import Row
from app.core.errors import ApiError
from app.escalations import store
from app.escalations.schemas import (
    BulkResult,
    BulkSkipped,
    EscalationStatus,
    EscalationSummary,
    EscalationView,
)
from app.events.transaction import transaction
from app.events.types import EventType
from app.security.credential_gate import redact
from app.security.principal import Scope


def escalation_view(row: Row) -> EscalationView:
    try:
        details = json.loads(row["details"] or "{}")
    except ValueError:
        details = {}
    return EscalationView(
        id=row["id"],
        kind=row["kind"],
        subject_type=row["subject_type"],
        subject_id=row["subject_id"],
        reason=row["reason"],
        details=details if isinstance(details, dict) else {"value": details},
        status=EscalationStatus(row["status"]),
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=row["acknowledged_at"],
        resolved_by=row["resolved_by"],
        resolved_at=row["resolved_at"],
        resolution_comment=row["resolution_comment"],
        version=row["version"],
        created_at=row["created_at"],
    )


async def get_escalation(ctx: AppContext, escalation_id: int) -> EscalationView:
    row = await store.escalation_by_id(ctx.db, escalation_id)
    if row is None:
        raise ApiError(404, "not_found", "no such escalation")
    return escalation_view(row)


def _refusal(row: Row, wanted: EscalationStatus, version: int | None) -> ApiError:
    if version is not None and int(row["version"]) != version:
        return ApiError(
            409,
            "conflict",
            "the escalation changed since you read it; reload",
            {"version": row["version"]},
        )
    return ApiError(
        409,
        "invalid_transition",
        f"an escalation that is {row['status']} cannot become {wanted.value}",
        {"status": row["status"]},
    )


async def acknowledge(
    ctx: AppContext, escalation_id: int, version: int | None, caller: Caller
) -> EscalationView:
    async with transaction(ctx, caller.actor, caller.client) as tx:
        row = await store.escalation_tx(tx.conn, escalation_id)
        if row is None:
            raise ApiError(404, "not_found", "no such escalation")
        if not await store.acknowledge(tx.conn, escalation_id, caller.actor, version):
            raise _refusal(row, EscalationStatus.ACKNOWLEDGED, version)
        await tx.audit(
            "escalation.acknowledged", f"escalation:{escalation_id}", {"kind": row["kind"]}
        )
        await tx.emit(
            EventType.ESCALATION_ACKNOWLEDGED,
            "escalation",
            escalation_id,
            {"kind": row["kind"], "by": caller.actor},
            min_scope=Scope.OPERATE,
        )
    return await get_escalation(ctx, escalation_id)


async def resolve(
    ctx: AppContext,
    escalation_id: int,
    comment: str,
    version: int | None,
    caller: Caller,
) -> EscalationView:
    comment = redact(comment).text  # a pasted secret is not kept (F14)
    async with transaction(ctx, caller.actor, caller.client) as tx:
        row = await store.escalation_tx(tx.conn, escalation_id)
        if row is None:
            raise ApiError(404, "not_found", "no such escalation")
        if not await store.resolve(tx.conn, escalation_id, caller.actor, comment, version):
            raise _refusal(row, EscalationStatus.RESOLVED, version)
        await tx.audit(
            "escalation.resolved",
            f"escalation:{escalation_id}",
            {"kind": row["kind"], "from": row["status"], "comment_chars": len(comment)},
        )
        await tx.emit(
            EventType.ESCALATION_RESOLVED,
            "escalation",
            escalation_id,
            {"kind": row["kind"], "by": caller.actor},
            min_scope=Scope.OPERATE,
        )
    return await get_escalation(ctx, escalation_id)


def _skip_reason(row: Row | None, wanted: EscalationStatus) -> str:
    if row is None:
        return "no such escalation"
    return f"it is {row['status']}; it cannot become {wanted.value}"


async def acknowledge_many(ctx: AppContext, ids: list[int], caller: Caller) -> BulkResult:
    """Acknowledge every open one of ``ids`` in one transaction; the others are
    reported as skipped with the reason (none of them is an error)."""
    done: list[int] = []
    skipped: list[BulkSkipped] = []
    async with transaction(ctx, caller.actor, caller.client) as tx:
        for escalation_id in dict.fromkeys(ids):
            row = await store.escalation_tx(tx.conn, escalation_id)
            if row is None or not await store.acknowledge(
                tx.conn, escalation_id, caller.actor, None
            ):
                reason = _skip_reason(row, EscalationStatus.ACKNOWLEDGED)
                skipped.append(BulkSkipped(id=escalation_id, reason=reason))
                continue
            done.append(escalation_id)
            await tx.audit(
                "escalation.acknowledged",
                f"escalation:{escalation_id}",
                {"kind": row["kind"], "bulk": True},
            )
            await tx.emit(
                EventType.ESCALATION_ACKNOWLEDGED,
                "escalation",
                escalation_id,
                {"kind": row["kind"], "by": caller.actor},
                min_scope=Scope.OPERATE,
            )
    return BulkResult(done=done, skipped=skipped)


async def resolve_many(ctx: AppContext, ids: list[int], comment: str, caller: Caller) -> BulkResult:
    """Resolve every open or acknowledged one of ``ids`` with one comment, in one
    transaction; the others are reported as skipped with the reason."""
    comment = redact(comment).text  # a pasted secret is not kept (F14)
    done: list[int] = []
    skipped: list[BulkSkipped] = []
    async with transaction(ctx, caller.actor, caller.client) as tx:
        for escalation_id in dict.fromkeys(ids):
            row = await store.escalation_tx(tx.conn, escalation_id)
            if row is None or not await store.resolve(
                tx.conn, escalation_id, caller.actor, comment, None
            ):
                reason = _skip_reason(row, EscalationStatus.RESOLVED)
                skipped.append(BulkSkipped(id=escalation_id, reason=reason))
                continue
            done.append(escalation_id)
            await tx.audit(
                "escalation.resolved",
                f"escalation:{escalation_id}",
                {
                    "kind": row["kind"],
                    "from": row["status"],
                    "comment_chars": len(comment),
                    "bulk": True,
                },
            )
            await tx.emit(
                EventType.ESCALATION_RESOLVED,
                "escalation",
                escalation_id,
                {"kind": row["kind"], "by": caller.actor},
                min_scope=Scope.OPERATE,
            )
    return BulkResult(done=done, skipped=skipped)


async def summary(ctx: AppContext) -> EscalationSummary:
    counts = await store.counts_by_status(ctx.db)
    open_count = counts.get("open", 0)
    acknowledged = counts.get("acknowledged", 0)
    return EscalationSummary(
        open=open_count,
        acknowledged=acknowledged,
        resolved=counts.get("resolved", 0),
        needs_attention=open_count + acknowledged,
        open_by_kind=await store.open_by_kind(ctx.db),
    )
