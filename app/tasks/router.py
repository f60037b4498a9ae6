"""HTTP endpoints of tasks. Creation goes through pre-flight validation (F16)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.access.caller import AdminCaller, OperateCaller
from app.access.dependencies import ReadAccess
from app.agents import store as agents_store
from app.agents.shell_readers import require_admin_for_shell_readers
from app.approvals.schemas import ApprovalStatus, TaskApproval
from app.conversations import service as conversations
from app.conversations.schemas import ConversationSummary
from app.core.context import Ctx
from app.core.ids import MAX_ID
from app.core.pagination import Page, Pagination, page_json
from app.tasks import approval, review, service, store
from app.tasks.review_schemas import HumanVerdict, ReviewsView
from app.tasks.review_verdict import Verdict
from app.tasks.schemas import TaskCreate, TaskStatus, TaskUpdate, TaskView

router = APIRouter(prefix="/api/tasks", tags=["tasks"])

TaskId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("", response_model=Page[TaskView])
async def list_tasks(
    _: ReadAccess,
    page: Pagination,
    ctx: Ctx,
    status: Annotated[TaskStatus | None, Query()] = None,
    agent_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    mission_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    """Scope read. Newest first (by id, a stable order)."""
    # built as JSON by SQLite: the same bytes as Page[TaskView] (docs/performance.md)
    items, count, total = await store.list_tasks_json(
        ctx.db,
        page,
        status=status.value if status else None,
        agent_id=agent_id,
        mission_id=mission_id,
    )
    return Response(page_json(items, count, total, page), media_type="application/json")


@router.post(
    "",
    status_code=201,
    response_model=TaskView,
    responses={200: {"description": "idempotent repeat: the existing task"}},
)
async def create_task(
    body: TaskCreate, caller: OperateCaller, response: Response, ctx: Ctx
) -> TaskView:
    """Scope operate. 422 ``preflight_failed`` lists every failed check (a token's
    refusal also opens an escalation; a person's at a form does not); a repeat with
    the same idempotency_key and content answers 200 with the existing task. A task
    whose run would get a shell runs at once only when an admin in a browser session
    creates it; otherwise it is created with ``approval: "pending"`` and no run
    until an admin approves it (``POST .../approve``; app/tasks/approval.py)."""
    view, created = await service.submit_task(ctx, body, caller)
    if not created:
        response.status_code = 200
    return view


@router.get("/{task_id}", response_model=TaskView)
async def get_task(task_id: TaskId, _: ReadAccess, ctx: Ctx) -> TaskView:
    """Scope read."""
    return await service.get_task(ctx, task_id)


@router.patch("/{task_id}", response_model=TaskView)
async def update_task(
    task_id: TaskId, body: TaskUpdate, caller: OperateCaller, ctx: Ctx
) -> TaskView:
    """Scope operate. Queued or blocked tasks only; ``version`` must be current. The
    words of a task whose run gets a shell change only by an admin in a browser
    session (app/agents/shell_readers.py)."""
    row = await store.task_row(ctx.db, task_id)
    if row is not None:
        async with ctx.db.read() as conn:
            shell = await approval.run_gets_shell(
                ctx, conn, int(row["agent_id"]), bool(row["needs_shell"])
            )
            agent = await agents_store.agent_row_tx(conn, int(row["agent_id"]))
        if shell and agent is not None:
            await require_admin_for_shell_readers(
                ctx,
                caller,
                [agent],
                action="task.update",
                target=f"task:{task_id}",
                what="change a task whose run gets a shell",
            )
    return await service.update_task(ctx, task_id, body, caller)


@router.post("/{task_id}/cancel", response_model=TaskView)
async def cancel_task(task_id: TaskId, caller: OperateCaller, ctx: Ctx) -> TaskView:
    """Scope operate. Its queued or running conversation is cancelled too."""
    return await service.cancel_task(ctx, task_id, caller)


@router.delete("/{task_id}", status_code=204)
async def delete_task(task_id: TaskId, caller: OperateCaller, ctx: Ctx) -> Response:
    """Scope operate. Soft delete; refused (409) while the task is in progress."""
    await service.delete_task(ctx, task_id, caller)
    return Response(status_code=204)


@router.get("/{task_id}/conversations", response_model=Page[ConversationSummary])
async def task_conversations(
    task_id: TaskId, _: ReadAccess, page: Pagination, ctx: Ctx
) -> Page[ConversationSummary]:
    """Scope read. The runs of one task, newest first."""
    await service.get_task(ctx, task_id)  # 404 for a missing or deleted task
    items, total = await conversations.list_conversations(ctx, page, status=None, task_id=task_id)
    return Page[ConversationSummary].build(items, total, page)


@router.get("/{task_id}/reviews", response_model=ReviewsView)
async def task_reviews(task_id: TaskId, _: ReadAccess, ctx: Ctx) -> ReviewsView:
    """Scope read. The review gate of the task: settings, cycles, every verdict."""
    return await review.reviews_view(ctx, task_id)


@router.post("/{task_id}/review", response_model=ReviewsView)
async def review_task(
    task_id: TaskId, body: HumanVerdict, caller: OperateCaller, ctx: Ctx
) -> ReviewsView:
    """Scope operate. A person's verdict on the review waiting for one (409
    ``no_review_waiting`` otherwise); ``request_changes`` needs ``reasons``."""
    await review.human_verdict(
        ctx,
        task_id,
        Verdict(body.verdict),
        body.reasons,
        caller,
    )
    return await review.reviews_view(ctx, task_id)


@router.post("/{task_id}/approve", response_model=TaskView)
async def approve_task(
    task_id: TaskId,
    body: TaskApproval,
    caller: AdminCaller,
    response: Response,
    ctx: Ctx,
) -> TaskView:
    """Admin only, from a person logged in to the web UI (``app.approvals.gate``).

    Approves the ``version`` read of a task waiting for approval (its run would get
    a shell) and queues its run. Two-person mode: never its author. One-owner mode:
    the only admin may approve their own with a step-up (``password``, and ``code``
    when enrolled); it answers 202 and is held for the cooling-off period, vetoable
    by any admin. To refuse it, cancel the task."""
    held = await approval.approve_task(ctx, task_id, body, caller)
    if held:
        response.status_code = 202
    return await service.get_task(ctx, task_id)


@router.post("/{task_id}/veto", response_model=TaskView)
async def veto_task_approval(task_id: TaskId, caller: AdminCaller, ctx: Ctx) -> TaskView:
    """Admin only. Stops a held one-owner approval; the task keeps waiting."""
    await approval.veto(ctx, task_id, caller)
    return await service.get_task(ctx, task_id)


@router.get("/{task_id}/approval", response_model=ApprovalStatus)
async def task_approval(task_id: TaskId, _: ReadAccess, ctx: Ctx) -> ApprovalStatus:
    """Scope read. Which approval mode applies and why, and the latest held approval."""
    return await approval.approval_status(ctx, task_id)
