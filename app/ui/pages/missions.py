"""The missions pages: the list, the proposal form, and one mission with its steps,
its tasks and the approval panel (``app/ui/approval.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.core.context import AppContext, Ctx
from app.core.pagination import Pagination
from app.missions import service as missions_service
from app.missions.schemas import MissionStatus
from app.ui import approval as approval_ui
from app.ui import store
from app.ui.auth import UiSession
from app.ui.page_kit import not_found, or_none, pager, ui_page

router = APIRouter(include_in_schema=False)


def ceilings(ctx: AppContext) -> dict[str, float | int]:
    s = ctx.settings
    return {
        "cost_usd": s.mission_max_cost_usd,
        "steps": s.mission_max_steps,
        "step_minutes": s.mission_max_step_minutes,
        "tokens": s.mission_max_tokens,
    }


@router.get("/ui/missions", response_class=HTMLResponse)
async def missions_page(
    request: Request,
    principal: UiSession,
    ctx: Ctx,
    page_params: Pagination,
    status: Annotated[MissionStatus | None, Query()] = None,
) -> HTMLResponse:
    items, total = await missions_service.list_missions(ctx, page_params, status)
    return await ui_page(
        request,
        principal,
        ctx,
        "missions.html",
        title="Missions",
        section="missions",
        missions=items,
        status=status.value if status else "",
        statuses=[s.value for s in MissionStatus],
        pager=pager(request, (total, page_params)),
    )


@router.get("/ui/missions/new", response_class=HTMLResponse)
async def mission_new_page(request: Request, principal: UiSession, ctx: Ctx) -> HTMLResponse:
    return await ui_page(
        request,
        principal,
        ctx,
        "mission_new.html",
        title="Propose a mission",
        section="missions",
        agents=await store.active_agent_choices(ctx.db),
        ceilings=ceilings(ctx),
    )


@router.get("/ui/missions/{mission_id}", response_class=HTMLResponse)
async def mission_page(
    mission_id: int, request: Request, principal: UiSession, ctx: Ctx
) -> HTMLResponse:
    approval = await approval_ui.mission_context(ctx, principal, mission_id)  # applies a due hold
    mission = await or_none(missions_service.get_mission(ctx, mission_id))
    if mission is None or approval is None:
        return not_found(request, principal, "mission")
    tasks = await store.mission_tasks(ctx.db, mission_id)
    by_step: dict[int, list[Any]] = {}
    for task in tasks:
        by_step.setdefault(int(task["mission_step"] or 0), []).append(task)
    return await ui_page(
        request,
        principal,
        ctx,
        "mission.html",
        title=f"Mission {mission.title}",
        section="missions",
        mission=mission,
        ceilings=ceilings(ctx),
        by_step=by_step,
        agent_names=await store.agent_names(ctx.db),
        **approval,
    )
