"""Reading conversations (the worker writes them)."""

from __future__ import annotations

from app.agents.shell_readers import decided_by_person
from app.conversations import store
from app.conversations.schemas import (
    ACTIVE,
    ConversationDetail,
    ConversationStatus,
    ConversationSummary,
    FollowUp,
)
from app.core.context import AppContext
from app.core.database import Row
from app.core.errors import ApiError
from app.core.pagination import PageParams
from app.security.principal import Principal
from app.tasks import service as tasks_service
from app.tasks.schemas import TaskCreate, TaskView


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


async def follow_up(
    ctx: AppContext,
    conversation_id: int,
    body: FollowUp,
    principal: Principal,
    client: str,
    *,
    own_input: bool,
) -> TaskView:
    """Reply to a finished run: a new task for the same agent that resumes the run's
    CLI session with the reply as its prompt. It goes through pre-flight (the gate,
    quotas, the agent's state) like any task; a run that left no session cannot be
    continued."""
    row = await store.conversation(ctx.db, conversation_id)
    if row is None:
        raise ApiError(404, "not_found", "no such conversation")
    if row["status"] in ACTIVE:
        raise ApiError(
            409, "run_not_finished", "this run has not finished; reply when it has", None
        )
    if not row["session_id"]:
        raise ApiError(
            422,
            "no_session",
            "this run left no session to continue (its agent CLI reported none);"
            " create a new task instead",
            {"field": "conversation_id"},
        )
    task = await tasks_service.get_task(ctx, int(row["task_id"]))
    title = f"Follow-up: {task.title}"
    spec = TaskCreate(
        title=title[:200],
        agent_id=int(row["agent_id"]),
        description=body.text,
        project_id=task.project_id,
        priority=task.priority,
        needs_shell=task.needs_shell,
    )
    view, _ = await tasks_service.submit_task(
        ctx,
        spec,
        actor=principal.actor,
        client=client,
        own_input=own_input,
        follows_conversation_id=conversation_id,
        decided_by_person=decided_by_person(principal),
    )
    return view
