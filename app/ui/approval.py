"""What the mission, rule and task pages show about approving: the mode that applies
and why, what this person may do (asked of ``app.approvals.gate``, the one
place that decides), and a held approval's countdown and veto.

Reading it first applies a hold whose cooling-off period is over, so the page
never shows a half state (``app.approvals.flow``)."""

from __future__ import annotations

from typing import Any, TypeVar

from app.approvals import flow, gate
from app.approvals.schemas import ApprovalStatus
from app.approvals.subject import Subject
from app.auth import totp
from app.core.context import AppContext
from app.core.errors import ApiError
from app.missions import approval as mission_approval
from app.rules import approval as rule_approval
from app.security.principal import Principal
from app.tasks import approval as task_approval

T = TypeVar("T")


def _duration(seconds: int) -> str:
    """The cooling-off period in words: "15 minutes", "90 seconds"."""
    if seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} seconds"


async def _context(
    ctx: AppContext,
    principal: Principal,
    status: ApprovalStatus,
    authors: list[str],
    what: str,
) -> dict[str, Any]:
    async with ctx.db.read() as conn:
        verdict = await gate.decide(ctx, conn, principal, authors, what=what)
        enrolled, _ = await totp.status(conn, principal.user_id or 0)
    if verdict.outcome is gate.Outcome.APPROVE:
        path = "approve"
    elif verdict.outcome is gate.Outcome.HOLD or verdict.code == "step_up_required":
        path = "self"  # one-owner: a step-up, then held
    else:
        path = "refused"
    return {
        "approval": status,
        "approval_path": path,
        "approval_refusal": verdict.message,
        "totp_enrolled": enrolled,
        "cooling_off": _duration(status.cooling_off_seconds),
    }


async def _subject_context(
    ctx: AppContext, principal: Principal, subject: Subject[T], target_id: int
) -> dict[str, Any] | None:
    """None when there is no such work."""
    try:
        status = await flow.approval_status(ctx, subject, target_id)
    except ApiError:  # 404: the page says "not found"
        return None
    async with ctx.db.read() as conn:
        authors = await subject.authors(conn, target_id)
    if authors is None:
        return None
    return await _context(ctx, principal, status, authors, subject.kind)


async def mission_context(
    ctx: AppContext, principal: Principal, mission_id: int
) -> dict[str, Any] | None:
    """None when there is no such mission."""
    return await _subject_context(ctx, principal, mission_approval.SUBJECT, mission_id)


async def rule_context(
    ctx: AppContext, principal: Principal, rule_id: int
) -> dict[str, Any] | None:
    """None when there is no such rule."""
    return await _subject_context(ctx, principal, rule_approval.SUBJECT, rule_id)


async def task_context(
    ctx: AppContext, principal: Principal, task_id: int
) -> dict[str, Any] | None:
    """None when there is no such task (a held shell task: app/tasks/approval.py)."""
    return await _subject_context(ctx, principal, task_approval.SUBJECT, task_id)
