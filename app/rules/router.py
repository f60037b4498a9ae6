"""Trigger rule endpoints (F8). HTTP only; the rules of the domain are in the service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.access.caller import AdminCaller
from app.access.dependencies import AdminAccess, ReadAccess
from app.approvals.schemas import ApprovalStatus
from app.core.context import Ctx
from app.core.ids import MAX_ID
from app.core.pagination import Page, Pagination
from app.rules import approval, service
from app.rules.schemas import (
    DryRunRequest,
    DryRunResult,
    FiringView,
    RuleApproval,
    RuleCreate,
    RuleUpdate,
    RuleView,
    TriggerEvent,
)

router = APIRouter(prefix="/api/rules", tags=["rules"])

#: bounded like every id, so a huge number is a 422, never an SQLite overflow (a 500)
RuleId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("", response_model=Page[RuleView])
async def list_rules(
    _: ReadAccess,
    page: Pagination,
    ctx: Ctx,
    enabled: Annotated[bool | None, Query()] = None,
    on: Annotated[TriggerEvent | None, Query()] = None,
) -> Page[RuleView]:
    """Scope read. Live rules, oldest first."""
    items, total = await service.list_rules(
        ctx, page, enabled=enabled, event_type=on.value if on else None
    )
    return Page[RuleView].build(items, total, page)


@router.post("", status_code=201, response_model=RuleView)
async def create_rule(body: RuleCreate, caller: AdminCaller, ctx: Ctx) -> RuleView:
    """Admin only. A rule that would start an agent with shell access is stored
    disabled, pending the approval of another admin."""
    return await service.create_rule(ctx, body, caller)


@router.get("/{rule_id}", response_model=RuleView)
async def get_rule(rule_id: RuleId, _: ReadAccess, ctx: Ctx) -> RuleView:
    """Scope read."""
    return await service.get_rule(ctx, rule_id)


@router.patch("/{rule_id}", response_model=RuleView)
async def update_rule(rule_id: RuleId, body: RuleUpdate, caller: AdminCaller, ctx: Ctx) -> RuleView:
    """Admin only. Change, enable or disable a rule (send its ``version``).

    The whole rule is validated again; a change to what it does that reaches
    an agent with shell access sets it back to pending approval (and disabled).
    """
    return await service.update_rule(ctx, rule_id, body, caller)


@router.delete("/{rule_id}", status_code=204)
async def delete_rule(rule_id: RuleId, caller: AdminCaller, ctx: Ctx) -> Response:
    """Admin only. Soft delete: the rule stops firing and leaves every list."""
    await service.delete_rule(ctx, rule_id, caller)
    return Response(status_code=204)


@router.post("/{rule_id}/approve", response_model=RuleView)
async def approve_rule(
    rule_id: RuleId,
    body: RuleApproval,
    caller: AdminCaller,
    response: Response,
    ctx: Ctx,
) -> RuleView:
    """Admin only, from a person logged in to the web UI (``app.approvals.gate``).

    Approves the ``version`` the approver has read; the rule still has to be
    enabled afterwards. Two-person mode: never an author of the rule. One-owner
    mode: the only admin may approve their own rule with a step-up
    (``password``, and ``code`` when enrolled); it answers 202 and is held for
    the cooling-off period (``GET .../approval``), vetoable by any admin.
    """
    rule, held = await approval.approve_rule(ctx, rule_id, body, caller)
    if held:
        response.status_code = 202
    return rule


@router.get("/{rule_id}/approval", response_model=ApprovalStatus)
async def approval_status(rule_id: RuleId, _: ReadAccess, ctx: Ctx) -> ApprovalStatus:
    """Scope read. Which approval mode applies and why, and the latest held approval."""
    return await approval.approval_status(ctx, rule_id)


@router.post("/{rule_id}/veto", response_model=RuleView)
async def veto_rule_approval(rule_id: RuleId, caller: AdminCaller, ctx: Ctx) -> RuleView:
    """Admin only. Stop a held self-approval before it takes effect; the rule stays
    pending and disabled."""
    return await approval.veto(ctx, rule_id, caller)


@router.post("/{rule_id}/dry-run", response_model=DryRunResult)
async def dry_run(rule_id: RuleId, body: DryRunRequest, _: AdminAccess, ctx: Ctx) -> DryRunResult:
    """Admin only. Which conditions an event would match and what each action
    would do. Nothing is written."""
    return await service.dry_run(ctx, rule_id, body)


@router.get("/{rule_id}/firings", response_model=Page[FiringView])
async def list_firings(
    rule_id: RuleId, _: ReadAccess, page: Pagination, ctx: Ctx
) -> Page[FiringView]:
    """Scope read. The rule's firings and their outcomes, newest first."""
    items, total = await service.list_firings(ctx, rule_id, page)
    return Page[FiringView].build(items, total, page)
