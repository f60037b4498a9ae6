"""Bodies of the mission endpoints. Unknown fields are refused everywhere."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.approvals.schemas import WithStepUp
from app.core.ids import Id

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Goal = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5_000)]
Instructions = Annotated[str, StringConstraints(max_length=20_000)]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2_000)]

#: Hard cap on the length of a proposal's step list, so a huge list is a plain
#: validation error; the real limit is the mission's ``steps`` bound (<= ceiling).
MAX_LISTED_STEPS = 100


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MissionStatus(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: bound on review cycles with a reviewer agent before a person is asked
MAX_REVIEW_CYCLES = 10
DEFAULT_REVIEW_CYCLES = 3


class ReviewSpec(Strict):
    """The review gate of a task or a mission step (docs/missions.md, "Review gate")."""

    agent_id: Id | None = Field(
        default=None, description="the reviewer agent; never the agent doing the work"
    )
    human: Annotated[bool, Field(strict=True)] = Field(
        default=False, description="a person reviews too (after the agent, if any)"
    )
    max_cycles: Annotated[int, Field(strict=True, ge=1, le=MAX_REVIEW_CYCLES)] = Field(
        default=DEFAULT_REVIEW_CYCLES,
        description="review cycles with the reviewer agent before a person is asked",
    )

    @model_validator(mode="after")
    def _someone_reviews(self) -> ReviewSpec:
        if self.agent_id is None and not self.human:
            raise ValueError(
                "a review needs a reviewer: set agent_id (another agent) or human: true"
            )
        return self


class MissionStep(Strict):
    title: Title
    agent_id: Id
    instructions: Instructions = ""
    #: the worker starts this step only after a person says so (docs/missions.md)
    pause_before: bool = False
    #: the step's task is reviewed before the mission goes on (docs/missions.md)
    review: ReviewSpec | None = None

    @field_validator("review")
    @classmethod
    def _reviewer_is_another_agent(
        cls, review: ReviewSpec | None, info: ValidationInfo
    ) -> ReviewSpec | None:
        if review is not None and review.agent_id == info.data.get("agent_id"):
            raise ValueError(
                "the reviewer must be another agent than the step's own agent;"
                " pick another agent, or let a person review"
            )
        return review


class MissionBounds(Strict):
    """Requested bounds; a missing one defaults to the configured ceiling."""

    cost_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    steps: Annotated[int, Field(strict=True, ge=1)] | None = None
    step_minutes: Annotated[int, Field(strict=True, ge=1)] | None = None
    tokens: Annotated[int, Field(strict=True, ge=1)] | None = None


class MissionCreate(Strict):
    title: Title
    goal: Goal
    steps: Annotated[list[MissionStep], Field(min_length=1, max_length=MAX_LISTED_STEPS)]
    bounds: MissionBounds = MissionBounds()


class MissionDecision(Strict):
    """Optional body of approve / reject / cancel."""

    comment: Comment = ""
    version: Annotated[int, Field(strict=True, ge=1)] | None = Field(
        default=None, description="if given, the decision applies only to this version"
    )


class MissionStepView(BaseModel):
    index: int = Field(description="1-based; tasks name it as mission_step")
    title: str
    agent_id: int
    instructions: str
    pause_before: bool = False
    review: ReviewSpec | None = None


class BoundsView(BaseModel):
    cost_usd: float
    steps: int
    step_minutes: int
    tokens: int


class MissionView(BaseModel):
    id: int
    title: str
    goal: str
    steps: list[MissionStepView]
    status: MissionStatus
    proposed_by: str
    bounds: BoundsView
    spent_cost_usd: float
    spent_tokens: int
    tasks_created: int = Field(
        description="tasks ever created for this mission, deleted ones too (counted against steps)"
    )
    decided_by: str | None
    decided_at: str | None
    decision_comment: str | None
    version: int
    created_at: str
    updated_at: str


class MissionApproval(MissionDecision, WithStepUp):
    """Body of a mission's approve: a decision, and a step-up when it is your own."""
