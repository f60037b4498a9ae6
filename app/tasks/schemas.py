"""Bodies of the task endpoints. Unknown fields are refused everywhere.

Some fields are deliberately loose here (``priority`` and ``due_at`` are plain
strings, text fields have only a hard size cap): their real rules are
pre-flight checks (``app/tasks/preflight.py``), so a bad value is reported by
its stable check code next to every other failed check.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.capability.model import Tool
from app.core.ids import MAX_ID, Id
from app.missions.schemas import ReviewSpec

#: Hard caps (a plain 422 ``validation_failed``); the pre-flight limits are lower.
TITLE_HARD_MAX = 10_000
DESCRIPTION_HARD_MAX = 100_000
MAX_DEPENDENCIES = 50

IdempotencyKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:\-]{1,128}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"


TERMINAL = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class TaskCreate(Strict):
    title: Annotated[str, StringConstraints(max_length=TITLE_HARD_MAX)]
    description: Annotated[str, StringConstraints(max_length=DESCRIPTION_HARD_MAX)] = ""
    agent_id: Id
    mission_id: Id | None = None
    mission_step: Annotated[int, Field(strict=True, ge=1, le=10_000)] | None = None
    project_id: Id | None = None
    priority: Annotated[str, StringConstraints(max_length=32)] = "normal"
    depends_on: Annotated[list[Id], Field(max_length=MAX_DEPENDENCIES)] = []
    idempotency_key: IdempotencyKey | None = None
    required_tools: Annotated[list[Tool], Field(max_length=len(Tool))] = []
    needs_shell: Annotated[bool, Field(strict=True)] = False
    due_at: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="ISO-8601 with a timezone, in the future, within a year"
    )
    review: ReviewSpec | None = Field(
        default=None, description="review before the task succeeds (docs/missions.md)"
    )

    @field_validator("depends_on")
    @classmethod
    def _no_repeats(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("a dependency is listed twice")
        return value

    @field_validator("required_tools")
    @classmethod
    def _tools_once(cls, value: list[Tool]) -> list[Tool]:
        if len(set(value)) != len(value):
            raise ValueError("a tool is listed twice")
        return value

    @property
    def wants_shell(self) -> bool:
        """Shell is needed when asked for, or when the shell tool is required."""
        return self.needs_shell or Tool.SHELL in self.required_tools


class TaskUpdate(Strict):
    """A change to a queued or blocked task. ``due_at: null`` clears the due date."""

    version: Annotated[int, Field(strict=True, ge=1)]
    title: Annotated[str, StringConstraints(max_length=TITLE_HARD_MAX)] | None = None
    description: Annotated[str, StringConstraints(max_length=DESCRIPTION_HARD_MAX)] | None = None
    priority: Annotated[str, StringConstraints(max_length=32)] | None = None
    due_at: Annotated[str, StringConstraints(max_length=64)] | None = None


class TaskView(BaseModel):
    id: int
    title: str
    description: str
    agent_id: int
    mission_id: int | None
    mission_step: int | None
    project_id: int | None
    priority: Priority
    status: TaskStatus
    required_tools: list[Tool]
    needs_shell: bool
    due_at: str | None
    idempotency_key: str | None
    depends_on: list[int]
    active_conversation_id: int | None = Field(
        description="the QUEUED or IN_PROGRESS conversation of this task, if any"
    )
    created_by: str
    version: int
    created_at: str
    updated_at: str
    approval: str = Field(
        default="",
        description="'' (none needed), 'pending' (its run would get a shell and no person"
        " decided it: held, no run is queued), 'approved' or 'refused'"
        " (docs/security-model.md, a shell needs a person)",
    )
    approved_by: str | None = None


__all__ = [
    "MAX_ID",
    "Priority",
    "ReviewSpec",
    "TaskCreate",
    "TaskStatus",
    "TaskUpdate",
    "TaskView",
]
