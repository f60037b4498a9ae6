"""Views of conversations (one agent run of a task). Written by the worker."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints


class ConversationStatus(StrEnum):
    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


ACTIVE = (ConversationStatus.QUEUED.value, ConversationStatus.IN_PROGRESS.value)


class ConversationSummary(BaseModel):
    id: int
    task_id: int
    agent_id: int
    status: ConversationStatus
    attempt: int
    reason: str | None
    truncated: bool
    input_tokens: int
    output_tokens: int
    cost_usd: float
    exit_code: int | None
    started_at: str | None
    finished_at: str | None
    created_at: str
    updated_at: str
    #: the agent CLI's session (a reply continues it)
    session_id: str | None = None
    #: the profile's runtime and the model of the run (unset before it ends)
    runtime: str | None = None
    model: str | None = None
    #: input tokens read from the provider's cache (included in input_tokens)
    cached_tokens: int = 0


class ConversationDetail(ConversationSummary):
    transcript: str


class FollowUp(BaseModel):
    """A reply to a finished run: continues the agent CLI's session."""

    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]
