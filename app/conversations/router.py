"""Reading conversations: one agent run of a task, with its transcript."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from app.access.dependencies import OperateAccess, ReadAccess, client_address
from app.conversations import service
from app.conversations.schemas import (
    ConversationDetail,
    ConversationStatus,
    ConversationSummary,
    FollowUp,
)
from app.core.context import Ctx
from app.core.pagination import Page, Pagination
from app.missions.schemas import MAX_ID
from app.tasks.schemas import TaskView

router = APIRouter(prefix="/api/conversations", tags=["conversations"])


@router.get("", response_model=Page[ConversationSummary])
async def list_conversations(
    _: ReadAccess,
    page: Pagination,
    ctx: Ctx,
    status: Annotated[ConversationStatus | None, Query()] = None,
) -> Page[ConversationSummary]:
    """Scope read. Newest first; without transcripts."""
    items, total = await service.list_conversations(ctx, page, status=status, task_id=None)
    return Page[ConversationSummary].build(items, total, page)


@router.get("/{conversation_id}", response_model=ConversationDetail)
async def get_conversation(
    conversation_id: Annotated[int, Path(ge=1, le=MAX_ID)], _: ReadAccess, ctx: Ctx
) -> ConversationDetail:
    """Scope read. With the transcript (capped and marked when truncated), tokens,
    cost and the reason it ended."""
    return await service.get_conversation(ctx, conversation_id)


@router.post("/{conversation_id}/follow-up", status_code=201, response_model=TaskView)
async def follow_up(
    conversation_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: FollowUp,
    principal: OperateAccess,
    request: Request,
    ctx: Ctx,
) -> TaskView:
    """Scope operate. Reply to a finished run: a new task for the same agent that
    resumes the run's CLI session with the reply as its prompt (pre-flight applies)."""
    return await service.follow_up(
        ctx,
        conversation_id,
        body,
        principal,
        client_address(request),
        own_input=principal.session_id is not None,
    )
