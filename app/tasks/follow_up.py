"""Follow-up turns: a reply to a finished run becomes a new task for the same agent
that resumes the run's CLI session. A task-domain action on a conversation: the
conversations package (runs) sits below tasks and imports nothing from it."""

from __future__ import annotations

from app.access.caller import Caller
from app.conversations import store
from app.conversations.schemas import ACTIVE, FollowUp
from app.core.context import AppContext
from app.core.errors import ApiError
from app.tasks import service as tasks_service
from app.tasks.schemas import TaskCreate, TaskView


async def follow_up(
    ctx: AppContext,
    conversation_id: int,
    body: FollowUp,
    caller: Caller,
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
        ctx, spec, caller, follows_conversation_id=conversation_id
    )
    return view
