"""HTTP endpoints of schedules (docs/schedules.md). Reading needs scope read;
creating, pausing, resuming, running now and deleting need scope operate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from app.access.caller import OperateCaller
from app.access.dependencies import ReadAccess
from app.core.context import Ctx
from app.core.ids import MAX_ID
from app.core.pagination import Page, Pagination
from app.schedules import service
from app.schedules.schemas import FiringView, ScheduleCreate, ScheduleView

router = APIRouter(prefix="/api/schedules", tags=["schedules"])

ScheduleId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("", response_model=Page[ScheduleView])
async def list_schedules(_: ReadAccess, page: Pagination, ctx: Ctx) -> Page[ScheduleView]:
    """Scope read. Newest first, each with its next five due times."""
    items, total = await service.list_schedules(ctx, page)
    return Page[ScheduleView].build(items, total, page)


@router.post("", status_code=201, response_model=ScheduleView)
async def create_schedule(body: ScheduleCreate, caller: OperateCaller, ctx: Ctx) -> ScheduleView:
    """Scope operate. 422 ``validation_failed`` lists every problem by field: the cron
    expression, the time zone, start and end, and the pre-flight checks of the task
    it would make."""
    return await service.create_schedule(ctx, body, caller)


@router.get("/{schedule_id}", response_model=ScheduleView)
async def get_schedule(schedule_id: ScheduleId, _: ReadAccess, ctx: Ctx) -> ScheduleView:
    """Scope read."""
    return await service.get_schedule(ctx, schedule_id)


@router.get("/{schedule_id}/firings", response_model=Page[FiringView])
async def list_firings(
    schedule_id: ScheduleId, _: ReadAccess, page: Pagination, ctx: Ctx
) -> Page[FiringView]:
    """Scope read. The history of firings, newest first."""
    items, total = await service.list_firings(ctx, schedule_id, page)
    return Page[FiringView].build(items, total, page)


@router.post("/{schedule_id}/pause", response_model=ScheduleView)
async def pause_schedule(schedule_id: ScheduleId, caller: OperateCaller, ctx: Ctx) -> ScheduleView:
    """Scope operate. 409 unless active."""
    return await service.pause(ctx, schedule_id, caller)


@router.post("/{schedule_id}/resume", response_model=ScheduleView)
async def resume_schedule(schedule_id: ScheduleId, caller: OperateCaller, ctx: Ctx) -> ScheduleView:
    """Scope operate. 409 unless paused. Due times that passed while paused do not fire."""
    return await service.resume(ctx, schedule_id, caller)


@router.post("/{schedule_id}/run", status_code=201, response_model=FiringView)
async def run_now(schedule_id: ScheduleId, caller: OperateCaller, ctx: Ctx) -> FiringView:
    """Scope operate. Make the schedule's task now, through pre-flight (422
    ``preflight_failed`` lists the failed checks; the refusal is in the history)."""
    return await service.run_now(
        ctx,
        schedule_id,
        caller,
    )


@router.delete("/{schedule_id}", status_code=204)
async def delete_schedule(schedule_id: ScheduleId, caller: OperateCaller, ctx: Ctx) -> Response:
    """Scope operate. Soft delete; the history and the tasks it made stay."""
    await service.delete_schedule(ctx, schedule_id, caller)
    return Response(status_code=204)
