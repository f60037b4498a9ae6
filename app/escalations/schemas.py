"""Bodies and views of the escalation endpoints (F21)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Comment = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Version = Annotated[int, Field(ge=1, le=2**62)]


class EscalationStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Acknowledge(BaseModel):
    """Optional body: ``version`` makes the change conditional (409 when stale)."""

    model_config = ConfigDict(extra="forbid")
    version: Version | None = None


class Resolve(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: Comment
    version: Version | None = None


BULK_MAX = 200
EscalationIds = Annotated[
    list[Annotated[int, Field(ge=1, le=2**63 - 1)]], Field(min_length=1, max_length=BULK_MAX)
]


class BulkAcknowledge(BaseModel):
    """Acknowledge several open escalations at once (1 to 200 ids)."""

    model_config = ConfigDict(extra="forbid")
    ids: EscalationIds


class BulkResolve(BaseModel):
    """Resolve several open or acknowledged escalations with one comment."""

    model_config = ConfigDict(extra="forbid")
    ids: EscalationIds
    comment: Comment


class BulkSkipped(BaseModel):
    id: int
    reason: str


class BulkResult(BaseModel):
    """What changed (``done``) and what was left as it was, with why."""

    done: list[int]
    skipped: list[BulkSkipped]


class EscalationView(BaseModel):
    id: int
    kind: str
    subject_type: str
    subject_id: int | None
    reason: str
    details: dict[str, Any]
    status: EscalationStatus
    acknowledged_by: str | None
    acknowledged_at: str | None
    resolved_by: str | None
    resolved_at: str | None
    resolution_comment: str | None
    version: int
    created_at: str


class EscalationSummary(BaseModel):
    open: int
    acknowledged: int
    resolved: int
    needs_attention: int
    open_by_kind: dict[str, int]
