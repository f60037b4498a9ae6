"""The follow-up route, ``POST /api/conversations/{id}/follow-up``: it makes a task,
so it lives with the tasks domain (``app/tasks/follow_up.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from app.access.caller import OperateCaller
from app.conversations.schemas import FollowUp
from app.core.context import Ctx
from app.core.ids import MAX_ID
from app.tasks import follow_up as service
from app.tasks.schemas import TaskView

router = APIRouter(prefix="/api/conversations", tags=["conversations"])


@router.post("/{conversation_id}/follow-up", status_code=201, response_model=TaskView)
async def follow_up(
    conversation_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: FollowUp,
    caller: OperateCaller,
    ctx: Ctx,
) -> TaskView:
    """Scope operate. Reply to a finished run: a new task for the same agent that
    resumes the run's CLI session with the reply as its prompt (pre-flight applies)."""
    return await service.follow_up(
        ctx,
        conversation_id,
        body,
        caller,
    )
