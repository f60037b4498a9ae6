"""What the mission, rule and task pages show about approving: the mode that applies
and why, what this person may do (asked of ``app.approvals.gate``, the one
place that decides), and a held approval's countdown and veto.

Reading it first applies a hold whose cooling-off period is over, so the page
never shows a half state (``app.approvals.release``)."""

from __future__ import annotations

from typing import Any

from app.approvals import gate
from app.approvals.schemas import ApprovalStatus
from app.auth import totp
from app.core.context import AppContext
from app.core.errors import ApiError
from app.missions import approval as mission_approval
from app.missions import store as mission_store
from app.rules import approval as rule_approval
from app.rules import store as rule_store
from app.security.principal import Principal
from app.tasks import approval as task_approval
from app.tasks import store as task_store


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


async def mission_context(
    ctx: AppContext, principal: Principal, mission_id: int
) -> dict[str, Any] | None:
    """None when there is no such mission."""
    try:
        status = await mission_approval.approval_status(ctx, mission_id)
    except ApiError:  # 404: the page says "not found"
        return None
    row = await mission_store.mission_row(ctx.db, mission_id)
    if row is None:
        return None
    return await _context(ctx, principal, status, [str(row["proposed_by"])], "mission")


async def rule_context(
    ctx: AppContext, principal: Principal, rule_id: int
) -> dict[str, Any] | None:
    """None when there is no such rule."""
    try:
        status = await rule_approval.approval_status(ctx, rule_id)
    except ApiError:  # 404: the page says "not found"
        return None
    row = await rule_store.rule_row(ctx.db, rule_id)
    if row is None:
        return None
    async with ctx.db.read() as conn:
        authors = await rule_store.rule_authors(conn, rule_id)
    return await _context(ctx, principal, status, [str(row["created_by"]), *authors], "rule")


async def task_context(
    ctx: AppContext, principal: Principal, task_id: int
) -> dict[str, Any] | None:
    """None when there is no such task (a held shell task: app/tasks/approval.py)."""
    try:
        status = await task_approval.approval_status(ctx, task_id)
    except ApiError:  # 404: the page says "not found"
        return None
    row = await task_store.task_row(ctx.db, task_id)
    if row is None:
        return None
    async with ctx.db.read() as conn:
        authors = await task_approval.authors(conn, str(row["created_by"]))
    return await _context(ctx, principal, status, authors, "task")
