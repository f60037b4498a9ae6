"""Bodies and views of the review gate's endpoints (docs/missions.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.core.database import Row


class HumanVerdict(BaseModel):
    """``POST /api/tasks/{id}/review``: a person's verdict on the waiting review."""

    model_config = ConfigDict(extra="forbid")
    verdict: Literal["approve", "request_changes"]
    reasons: Annotated[str, StringConstraints(max_length=4_000)] = Field(
        default="", description="required when requesting changes: what must change"
    )


class VerdictView(BaseModel):
    id: int
    cycle: int
    reviewer_kind: Literal["agent", "human"]
    reviewer: str
    verdict: Literal["approve", "request_changes", "unparseable", "review_failed"]
    reasons: str
    conversation_id: int | None
    created_at: str


class ReviewCycleView(BaseModel):
    cycle: int
    state: Literal["with_agent", "with_human", "approved", "changes_requested", "closed"]
    work_conversation_id: int
    review_task_id: int | None
    diff: str = Field(description="the workspace diff shown to the reviewer (bounded, gated)")
    created_at: str
    updated_at: str
    verdicts: list[VerdictView]


class ReviewsView(BaseModel):
    task_id: int
    reviews_task_id: int | None = Field(description="set on a review task: the work it reviews")
    reviewer_agent_id: int | None
    human: bool
    max_cycles: int
    waiting_for_human: bool
    cycles: list[ReviewCycleView]


def verdict_view(row: Row) -> VerdictView:
    return VerdictView(
        id=row["id"],
        cycle=row["cycle"],
        reviewer_kind=row["reviewer_kind"],
        reviewer=row["reviewer"],
        verdict=row["verdict"],
        reasons=row["reasons"],
        conversation_id=row["conversation_id"],
        created_at=row["created_at"],
    )
