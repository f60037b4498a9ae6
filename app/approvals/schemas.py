"""Bodies and views of approvals: the step-up may come with the approval itself."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.auth.schemas import Password
from app.auth.step_up import SecondFactorCode, StepUpProof
from app.missions.schemas import MissionDecision
from app.rules.schemas import RuleVersion


class _WithStepUp(BaseModel):
    password: Password | None = Field(
        default=None,
        description="approving your own work (one-owner mode): your password again, a step-up",
    )
    code: SecondFactorCode | None = Field(
        default=None, description="with password: your authenticator (or recovery) code"
    )

    def proof(self) -> StepUpProof | None:
        if self.password is None:
            return None
        return StepUpProof(password=self.password, code=self.code)


class MissionApproval(MissionDecision, _WithStepUp):
    """Body of a mission's approve: a decision, and a step-up when it is your own."""


class RuleApproval(RuleVersion, _WithStepUp):
    """Body of a rule's approve: the version read, and a step-up when it is your own."""


class TaskApproval(_WithStepUp):
    """Body of a held shell task's approve: the version read, and a step-up when it
    is your own."""

    version: int = Field(strict=True, ge=1, le=2**53, description="the task version you read")


class HoldView(BaseModel):
    state: str = Field(description="held, effective, vetoed or void")
    approver: str
    created_at: str
    effective_at: str = Field(description="when a held approval takes effect unless vetoed")
    closed_by: str | None
    closed_at: str | None


class ApprovalStatus(BaseModel):
    mode: str = Field(description="two_person or one_owner")
    why: str
    admins: int
    cooling_off_seconds: int
    hold: HoldView | None = Field(description="the latest one-owner approval hold, if any")
