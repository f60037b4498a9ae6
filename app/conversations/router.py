"""Reading conversations: one agent run of a task, with its transcript."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.access.dependencies import ReadAccess
from app.conversations import service
from app.conversations.schemas import (
    ConversationDetail,
    ConversationStatus,
    ConversationSummary,
)
from app.core.context import Ctx
from app.core.ids import MAX_ID
from app.core.pagination import Page, Pagination

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
