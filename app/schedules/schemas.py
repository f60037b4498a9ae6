"""Bodies and views of the schedule endpoints. Unknown fields are refused.

The cron expression, the time zone and the start/end moments are plain strings
here: their rules (a parsable expression, a known zone, an ISO-8601 moment with
an offset) are checked by the service, which names the field and the fix in
plain words (``app/schedules/service.py``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.capability.model import Tool
from app.core.ids import MAX_ID, Id
from app.tasks.schemas import DESCRIPTION_HARD_MAX, TITLE_HARD_MAX, Priority

NAME_MAX = 100
CRON_MAX = 120
TIMEZONE_MAX = 64
MAX_RUNS_CEILING = 1_000_000
#: how many due times a view lists
NEXT_DUE_COUNT = 5


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


class MissedPolicy(StrEnum):
    """What a pass does with due times that passed while nothing could fire them
    (the worker was down, the clock was not synchronised): ``run_once`` makes one
    task for the latest of them; ``skip`` makes none and waits for the next."""

    RUN_ONCE = "run_once"
    SKIP = "skip"


class FiringKind(StrEnum):
    DUE = "due"
    CAUGHT_UP = "caught_up"
    RUN_NOW = "run_now"


class FiringOutcome(StrEnum):
    CREATED = "created"
    REFUSED = "refused"
    SKIPPED = "skipped"


class ScheduleCreate(Strict):
    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX)
    ]
    cron: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=CRON_MAX)
    ]
    timezone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=TIMEZONE_MAX)] = (
        "UTC"
    )
    starts_at: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="ISO-8601 with an offset; default: now"
    )
    ends_at: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="ISO-8601 with an offset; no due time after it fires"
    )
    max_runs: Annotated[int, Field(strict=True, ge=1, le=MAX_RUNS_CEILING)] | None = None
    missed_policy: MissedPolicy = MissedPolicy.RUN_ONCE
    # the task each firing makes
    title: Annotated[str, StringConstraints(max_length=TITLE_HARD_MAX)]
    description: Annotated[str, StringConstraints(max_length=DESCRIPTION_HARD_MAX)] = ""
    agent_id: Id
    project_id: Id | None = None
    priority: Priority = Priority.NORMAL
    required_tools: Annotated[list[Tool], Field(max_length=len(Tool))] = []
    needs_shell: Annotated[bool, Field(strict=True)] = False

    @field_validator("required_tools")
    @classmethod
    def _tools_once(cls, value: list[Tool]) -> list[Tool]:
        if len(set(value)) != len(value):
            raise ValueError("a tool is listed twice")
        return value


class ScheduleView(BaseModel):
    id: int
    name: str
    cron: str
    cron_explained: str = Field(description="the expression in words")
    timezone: str
    starts_at: str
    ends_at: str | None
    max_runs: int | None
    missed_policy: MissedPolicy
    status: ScheduleStatus
    ended_reason: str | None
    title: str
    description: str
    agent_id: int
    project_id: int | None
    priority: Priority
    required_tools: list[Tool]
    needs_shell: bool
    runs: int
    handled_through: str
    next_due: list[str] = Field(
        description=f"the next {NEXT_DUE_COUNT} due times (UTC), none while paused or ended"
    )
    created_by: str
    version: int
    created_at: str
    updated_at: str


class FiringView(BaseModel):
    id: int
    schedule_id: int
    due_at: str
    kind: FiringKind
    outcome: FiringOutcome
    task_id: int | None
    missed: int = Field(description="due times passed over by the missed-run policy")
    detail: str
    actor: str
    fired_at: str


__all__ = [
    "MAX_ID",
    "FiringKind",
    "FiringOutcome",
    "FiringView",
    "MissedPolicy",
    "ScheduleCreate",
    "ScheduleStatus",
    "ScheduleView",
]
