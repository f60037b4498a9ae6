"""Views of conversations (one agent run of a task). Written by the worker."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel


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


class ConversationDetail(ConversationSummary):
    transcript: str
