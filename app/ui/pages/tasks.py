"""The tasks pages: the board by status (or one status as a list), the create form,
one task with its runs, reviews and approval panel, and one run's transcript.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.capability.model import Tool
from app.conversations import service as conversations_service
from app.core.context import Ctx
from app.core.pagination import PageParams, Pagination
from app.tasks import review, review_store
from app.tasks import service as tasks_service
from app.tasks.schemas import Priority, TaskStatus
from app.ui import approval as approval_ui
from app.ui import store
from app.ui.auth import UiSession
from app.ui.page_kit import capabilities, not_found, or_none, pager, ui_page

router = APIRouter(include_in_schema=False)

BOARD_COLUMNS: tuple[TaskStatus, ...] = (
    TaskStatus.QUEUED,
    TaskStatus.IN_PROGRESS,
    TaskStatus.BLOCKED,
    TaskStatus.SUCCEEDED,
    TaskStatus.FAILED,
    TaskStatus.CANCELLED,
)


BOARD_PER_COLUMN = 20


@router.get("/ui/tasks", response_class=HTMLResponse)
async def tasks_page(
    request: Request,
    principal: UiSession,
    ctx: Ctx,
    page_params: Pagination,
    status: Annotated[TaskStatus | None, Query()] = None,
) -> HTMLResponse:
    names = await store.agent_names(ctx.db)
    if status is not None:
        items, total = await tasks_service.list_tasks(
            ctx, page_params, status=status, agent_id=None, mission_id=None
        )
        return await ui_page(
            request,
            principal,
            ctx,
            "tasks_list.html",
            title=f"Tasks: {status.value.replace('_', ' ')}",
            section="tasks",
            tasks=items,
            status=status.value,
            agent_names=names,
            pager=pager(request, (total, page_params)),
        )
    columns = []
    for column in BOARD_COLUMNS:
        items, total = await tasks_service.list_tasks(
            ctx,
            PageParams(limit=BOARD_PER_COLUMN, offset=0),
            status=column,
            agent_id=None,
            mission_id=None,
        )
        columns.append({"status": column.value, "tasks": items, "total": total})
    return await ui_page(
        request,
        principal,
        ctx,
        "tasks.html",
        title="Tasks",
        section="tasks",
        columns=columns,
        agent_names=names,
    )


@router.get("/ui/tasks/new", response_class=HTMLResponse)
async def task_new_page(
    request: Request,
    principal: UiSession,
    ctx: Ctx,
    mission_id: Annotated[int | None, Query(ge=1)] = None,
    mission_step: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    agent_id: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    return await ui_page(
        request,
        principal,
        ctx,
        "task_new.html",
        title="New task",
        section="tasks",
        agents=(agents := await store.active_agent_choices(ctx.db)),
        capabilities=capabilities(ctx, agents),
        missions=await store.open_mission_choices(ctx.db),
        projects=await store.project_choices(ctx.db),
        priorities=[p.value for p in Priority],
        tools=list(Tool),
        preset={"mission_id": mission_id, "mission_step": mission_step, "agent_id": agent_id},
    )


@router.get("/ui/tasks/{task_id}", response_class=HTMLResponse)
async def task_page(
    task_id: int, request: Request, principal: UiSession, ctx: Ctx, page_params: Pagination
) -> HTMLResponse:
    approval = await approval_ui.task_context(ctx, principal, task_id)  # applies a due hold
    task = await or_none(tasks_service.get_task(ctx, task_id))
    if task is None or approval is None:
        return not_found(request, principal, "task")
    runs, total = await conversations_service.list_conversations(
        ctx, page_params, status=None, task_id=task_id
    )
    return await ui_page(
        request,
        principal,
        ctx,
        "task.html",
        title=f"Task {task.title}",
        section="tasks",
        task=task,
        runs=runs,
        pager=pager(request, (total, page_params)),
        agent_names=await store.agent_names(ctx.db),
        reviews=await review.reviews_view(ctx, task_id),
        **approval,
    )


@router.get("/ui/runs/{conversation_id}", response_class=HTMLResponse)
async def run_page(
    conversation_id: int, request: Request, principal: UiSession, ctx: Ctx
) -> HTMLResponse:
    run = await or_none(conversations_service.get_conversation(ctx, conversation_id))
    if run is None:
        return not_found(request, principal, "run")
    task = await or_none(tasks_service.get_task(ctx, run.task_id))
    return await ui_page(
        request,
        principal,
        ctx,
        "run.html",
        title=f"Run {run.id}",
        section="tasks",
        run=run,
        task=task,
        agent_names=await store.agent_names(ctx.db),
        redactions=len(re.findall(r"\[REDACTED:[a-z_]+\]", run.transcript)),
        live_from=await store.run_started_event(ctx.db, run.id),
        verdicts=await review_store.verdicts_for_conversation(ctx.db, run.id),
    )
