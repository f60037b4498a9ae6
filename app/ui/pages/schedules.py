"""The Schedules pages: the list with the next five due times and a form to create
one, and one schedule with its actions (pause, resume, run now) and its history
(docs/schedules.md). Pages only read; every change goes through the JSON API."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.capability.model import Tool
from app.core.clock import parse_iso
from app.core.context import Ctx
from app.core.pagination import Pagination
from app.schedules import service
from app.schedules.schemas import MissedPolicy, ScheduleView
from app.tasks.schemas import Priority
from app.ui import store
from app.ui.auth import UiSession
from app.ui.page_kit import capabilities, not_found, or_none, pager, ui_page

router = APIRouter(include_in_schema=False)


def local_times(view: ScheduleView) -> list[str]:
    """The next due times in the schedule's own time zone, for people."""
    zone = service.zone_of(view.timezone)
    out = []
    for text in view.next_due:
        moment = parse_iso(text)
        local = moment.astimezone(zone) if zone is not None else moment
        out.append(local.strftime("%a %Y-%m-%d %H:%M %Z"))
    return out


@router.get("/ui/schedules", response_class=HTMLResponse)
async def schedules_page(
    request: Request, principal: UiSession, ctx: Ctx, page_params: Pagination
) -> HTMLResponse:
    items, total = await service.list_schedules(ctx, page_params)
    agents = await store.active_agent_choices(ctx.db)
    return await ui_page(
        request,
        principal,
        ctx,
        "schedules.html",
        title="Schedules",
        section="schedules",
        schedules=[(s, local_times(s)) for s in items],
        agent_names=await store.agent_names(ctx.db),
        agents=agents,
        capabilities=capabilities(ctx, agents),
        projects=await store.project_choices(ctx.db),
        priorities=[p.value for p in Priority],
        policies=[p.value for p in MissedPolicy],
        tools=list(Tool),
        clock_note=await asyncio.to_thread(service.clock_note, ctx),
        pager=pager(request, (total, page_params)),
    )


@router.get("/ui/schedules/{schedule_id}", response_class=HTMLResponse)
async def schedule_page(
    schedule_id: int, request: Request, principal: UiSession, ctx: Ctx, page_params: Pagination
) -> HTMLResponse:
    view = await or_none(service.get_schedule(ctx, schedule_id))
    if view is None:
        return not_found(request, principal, "schedule")
    history, total = await service.list_firings(ctx, schedule_id, page_params)
    context: dict[str, Any] = {
        "schedule": view,
        "local_due": local_times(view),
        "firings": history,
        "agent_names": await store.agent_names(ctx.db),
        "clock_note": await asyncio.to_thread(service.clock_note, ctx),
        "pager": pager(request, (total, page_params)),
    }
    return await ui_page(
        request,
        principal,
        ctx,
        "schedule.html",
        title=f"Schedule: {view.name}",
        section="schedules",
        **context,
    )
