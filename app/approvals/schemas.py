"""Bodies and views of approvals: the step-up may come with the approval itself."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.auth.schemas import Password
from app.auth.step_up import SecondFactorCode, StepUpProof


class WithStepUp(BaseModel):
    """An approval body's optional step-up (approving your own work in one-owner mode)."""

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


class TaskApproval(WithStepUp):
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
