"""Reading conversations (the worker writes them)."""

from __future__ import annotations

from app.conversations import store
from app.conversations.schemas import (
    ConversationDetail,
    ConversationStatus,
    ConversationSummary,
)
from app.core.context import AppContext
from app.core.database import Row
from app.core.errors import ApiError
from app.core.pagination import PageParams


def summary_view(row: Row) -> ConversationSummary:
    return ConversationSummary(
        id=row["id"],
        task_id=row["task_id"],
        agent_id=row["agent_id"],
        status=ConversationStatus(row["status"]),
        attempt=row["attempt"],
        reason=row["reason"],
        truncated=bool(row["truncated"]),
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cost_usd=row["cost_usd"],
        exit_code=row["exit_code"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        session_id=row["session_id"],
        runtime=row["runtime"],
        model=row["model"],
        cached_tokens=row["cached_tokens"],
    )


async def get_conversation(ctx: AppContext, conversation_id: int) -> ConversationDetail:
    row = await store.conversation(ctx.db, conversation_id)
    if row is None:
        raise ApiError(404, "not_found", "no such conversation")
    return ConversationDetail(**summary_view(row).model_dump(), transcript=str(row["transcript"]))


async def list_conversations(
    ctx: AppContext,
    page: PageParams,
    *,
    status: ConversationStatus | None,
    task_id: int | None,
) -> tuple[list[ConversationSummary], int]:
    rows, total = await store.list_conversations(
        ctx.db, page, status=status.value if status else None, task_id=task_id
    )
    return [summary_view(r) for r in rows], total
