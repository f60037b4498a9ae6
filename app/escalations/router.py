"""HTTP endpoints of escalations (F21): list, detail, acknowledge, resolve (one or
many at once), summary."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.access.caller import OperateCaller
from app.access.dependencies import ReadAccess
from app.core.context import Ctx
from app.core.pagination import Page, Pagination
from app.escalations import service, store
from app.escalations.schemas import (
    Acknowledge,
    BulkAcknowledge,
    BulkResolve,
    BulkResult,
    EscalationStatus,
    EscalationSummary,
    EscalationView,
    Resolve,
)

router = APIRouter(prefix="/api/escalations", tags=["escalations"])

EscalationId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("", response_model=Page[EscalationView])
async def list_escalations(
    _: ReadAccess,
    page: Pagination,
    ctx: Ctx,
    status: Annotated[EscalationStatus | None, Query()] = None,
    kind: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> Page[EscalationView]:
    """Scope read. Newest first, filterable by status and kind."""
    rows, total = await store.list_escalations(
        ctx.db, page, status=status.value if status else None, kind=kind
    )
    return Page[EscalationView].build([service.escalation_view(r) for r in rows], total, page)


@router.get("/summary", response_model=EscalationSummary)
async def escalation_summary(_: ReadAccess, ctx: Ctx) -> EscalationSummary:
    """Scope read. Counts for the dashboard."""
    return await service.summary(ctx)


@router.post("/acknowledge", response_model=BulkResult)
async def acknowledge_many(body: BulkAcknowledge, caller: OperateCaller, ctx: Ctx) -> BulkResult:
    """Scope operate. Acknowledge up to 200 open escalations in one transaction;
    ids that are not open (or do not exist) come back in ``skipped`` with why."""
    return await service.acknowledge_many(ctx, body.ids, caller)


@router.post("/resolve", response_model=BulkResult)
async def resolve_many(body: BulkResolve, caller: OperateCaller, ctx: Ctx) -> BulkResult:
    """Scope operate. Resolve up to 200 open or acknowledged escalations with one
    comment (required), in one transaction; the rest come back in ``skipped``."""
    return await service.resolve_many(ctx, body.ids, body.comment, caller)


@router.get("/{escalation_id}", response_model=EscalationView)
async def get_escalation(escalation_id: EscalationId, _: ReadAccess, ctx: Ctx) -> EscalationView:
    """Scope read."""
    return await service.get_escalation(ctx, escalation_id)


@router.post("/{escalation_id}/acknowledge", response_model=EscalationView)
async def acknowledge(
    escalation_id: EscalationId,
    caller: OperateCaller,
    ctx: Ctx,
    body: Acknowledge | None = None,
) -> EscalationView:
    """Scope operate. open -> acknowledged; anything else is a 409."""
    version = body.version if body else None
    return await service.acknowledge(ctx, escalation_id, version, caller)


@router.post("/{escalation_id}/resolve", response_model=EscalationView)
async def resolve(
    escalation_id: EscalationId,
    body: Resolve,
    caller: OperateCaller,
    ctx: Ctx,
) -> EscalationView:
    """Scope operate. open or acknowledged -> resolved, with a comment (required)."""
    return await service.resolve(ctx, escalation_id, body.comment, body.version, caller)
