"""HTTP endpoints of missions (F17). Who may approve: ``app.approvals.gate``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.access.caller import AdminCaller, OperateCaller
from app.access.dependencies import ReadAccess
from app.approvals.schemas import ApprovalStatus
from app.core.context import Ctx
from app.core.ids import MAX_ID
from app.core.pagination import Page, Pagination
from app.missions import approval, service
from app.missions.schemas import (
    MissionApproval,
    MissionCreate,
    MissionDecision,
    MissionStatus,
    MissionView,
)

router = APIRouter(prefix="/api/missions", tags=["missions"])

MissionId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("", response_model=Page[MissionView])
async def list_missions(
    _: ReadAccess,
    page: Pagination,
    ctx: Ctx,
    status: Annotated[MissionStatus | None, Query()] = None,
) -> Page[MissionView]:
    """Scope read. Newest first."""
    items, total = await service.list_missions(ctx, page, status)
    return Page[MissionView].build(items, total, page)


@router.post("", status_code=201, response_model=MissionView)
async def propose_mission(body: MissionCreate, caller: OperateCaller, ctx: Ctx) -> MissionView:
    """Scope operate. A structured proposal; bounds default to (and may not exceed)
    the configured ceilings. 422 ``proposal_refused`` names every bound exceeded (a
    token's bound refusal also opens an escalation; a person's at a form does not)."""
    return await service.propose_mission(
        ctx,
        body,
        caller,
    )


@router.get("/{mission_id}", response_model=MissionView)
async def get_mission(mission_id: MissionId, _: ReadAccess, ctx: Ctx) -> MissionView:
    """Scope read. With spending against the bounds."""
    return await service.get_mission(ctx, mission_id)


@router.post("/{mission_id}/approve", response_model=MissionView)
async def approve_mission(
    mission_id: MissionId,
    caller: OperateCaller,
    response: Response,
    ctx: Ctx,
    body: MissionApproval | None = None,
) -> MissionView:
    """Scope operate, from a person logged in to the web UI (``app.approvals.gate``).
    Two-person mode: never the proposer. One-owner mode: the only admin may
    approve their own proposal with a step-up (``password``, and ``code`` when
    enrolled); it answers 202 and is held for the cooling-off period (see
    ``GET .../approval``), vetoable by any admin."""
    mission, held = await approval.approve_mission(
        ctx, mission_id, body or MissionApproval(), caller
    )
    if held:
        response.status_code = 202
    return mission


@router.get("/{mission_id}/approval", response_model=ApprovalStatus)
async def approval_status(mission_id: MissionId, _: ReadAccess, ctx: Ctx) -> ApprovalStatus:
    """Scope read. Which approval mode applies and why, and the latest held approval."""
    return await approval.approval_status(ctx, mission_id)


@router.post("/{mission_id}/veto", response_model=MissionView)
async def veto_mission_approval(
    mission_id: MissionId,
    caller: AdminCaller,
    ctx: Ctx,
    body: MissionDecision | None = None,
) -> MissionView:
    """Scope admin. Stop a held self-approval before it takes effect; the mission
    stays proposed."""
    return await approval.veto(ctx, mission_id, body or MissionDecision(), caller)


@router.post("/{mission_id}/reject", response_model=MissionView)
async def reject_mission(
    mission_id: MissionId,
    caller: OperateCaller,
    ctx: Ctx,
    body: MissionDecision | None = None,
) -> MissionView:
    """Scope operate."""
    return await service.reject_mission(ctx, mission_id, body or MissionDecision(), caller)


@router.post("/{mission_id}/cancel", response_model=MissionView)
async def cancel_mission(
    mission_id: MissionId,
    caller: OperateCaller,
    ctx: Ctx,
    body: MissionDecision | None = None,
) -> MissionView:
    """Scope operate. A running mission's open tasks and runs are cancelled too."""
    return await service.cancel_mission(ctx, mission_id, body or MissionDecision(), caller)
