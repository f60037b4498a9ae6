"""The one approval flow around the gate (``app.approvals.gate``) and the holds
(``app.approvals.held``), for every kind of work (``app.approvals.subject``):
approve or hold, veto, release due holds, describe (docs/security-model.md,
"Approvals: two-person or one-owner").

A second person's approval takes effect at once. A one-owner self-approval
(with a fresh step-up, used up by the hold) is held: a security notification
goes out at once, any admin may veto it, and when the cooling-off period is
over the worker's pass (``release_due``) or the next look at the work applies
it, after checking again that the work is still the version approved. A
refused approval is audited and raises a security alert (``record_refusal``).
"""

from __future__ import annotations

from typing import TypeVar

from app.access.caller import Caller
from app.access.refusals import record_refusal
from app.approvals import gate, held
from app.approvals.schemas import ApprovalStatus
from app.approvals.subject import Grant, Ready, Subject
from app.auth import step_up
from app.auth.step_up import StepUpProof
from app.core.context import AppContext
from app.core.errors import ApiError
from app.events.transaction import Tx, transaction
from app.security.principal import Principal

T = TypeVar("T")

#: the actor of a hold made effective or void by the release pass
SYSTEM = "system:approval-hold"


async def approve(
    ctx: AppContext,
    subject: Subject[T],
    target_id: int,
    caller: Caller,
    *,
    version: int | None,
    comment: str,
    proof: StepUpProof | None,
) -> bool:
    """Approve (or hold the approval of) the work at ``version``; whether held."""
    principal = caller.principal
    if proof is not None:
        await step_up.step_up(ctx, caller, proof)
    verdict: gate.Verdict | None = None
    async with transaction(ctx, caller.actor, caller.client) as tx:
        authors = await subject.authors(tx.conn, target_id)
        if authors is None:
            raise subject.not_found()
        # People, not credentials: an author's token acts for its owner.
        verdict = await gate.decide(ctx, tx.conn, principal, authors, what=subject.kind)
        if verdict.outcome is not gate.Outcome.REFUSE:
            ready = await subject.check(ctx, tx, target_id, version)
            if await held.open_hold(tx.conn, subject.kind, target_id) is not None:
                raise ApiError(
                    409,
                    "approval_held",
                    f"an approval of this {subject.kind} is already held: wait for it or veto it",
                )
            if verdict.outcome is gate.Outcome.APPROVE:
                grant = Grant(target_id, ready.version, principal.actor, comment)
                await subject.apply(tx, grant, ready.facts)
            else:
                await _hold(ctx, tx, subject, target_id, ready, principal, comment, verdict.mode)
    if verdict.outcome is gate.Outcome.REFUSE:
        await record_refusal(
            ctx,
            actor=caller.actor,
            client=caller.client,
            action=f"{subject.kind}.approve",
            target=subject.target(target_id),
            reason=verdict.code,
        )
        raise ApiError(403, verdict.code, verdict.message)
    return verdict.outcome is gate.Outcome.HOLD


async def _hold(
    ctx: AppContext,
    tx: Tx,
    subject: Subject[T],
    target_id: int,
    ready: Ready[T],
    principal: Principal,
    comment: str,
    mode: gate.ModeInfo,
) -> None:
    names = await subject.names(tx.conn, target_id)
    assert names is not None and principal.user_id is not None
    hold = await held.insert(
        tx.conn,
        kind=subject.kind,
        target_id=target_id,
        target_version=ready.version,
        approver=principal.actor,
        approver_user_id=principal.user_id,
        comment=comment,
        cooling_off_s=ctx.settings.approval_cooling_off_seconds,
    )
    await step_up.consume(tx.conn, principal)
    await tx.audit(
        f"{subject.kind}.approve_held",
        subject.target(target_id),
        {"version": hold.target_version, "effective_at": hold.effective_at, "mode": mode.mode},
    )
    link = subject.link(target_id)
    await tx.security_alert(
        f"Self-approval held: {names.title}"[:200],
        f"{principal.actor} approved their own {names.own} in one-owner mode ({mode.why})."
        f" It takes effect at {hold.effective_at} unless an admin vetoes it on {link}. If"
        " this was not you, veto it and change your password.",
        link=link,
    )


async def veto(
    ctx: AppContext,
    subject: Subject[T],
    target_id: int,
    caller: Caller,
    *,
    reason: str = "vetoed",
) -> None:
    """Any admin stops a held self-approval; the work keeps waiting."""
    async with transaction(ctx, caller.actor, caller.client) as tx:
        names = await subject.names(tx.conn, target_id)
        if names is None:
            raise subject.not_found()
        hold = await held.open_hold(tx.conn, subject.kind, target_id)
        if hold is None:
            raise ApiError(
                409,
                "nothing_held",
                f"no approval of this {subject.kind} is waiting to take effect",
            )
        await held.close(tx.conn, hold.id, "vetoed", by=caller.actor, reason=reason)
        await tx.audit(
            f"{subject.kind}.veto",
            subject.target(target_id),
            {"hold": hold.id, "approver": hold.approver},
        )
        await tx.security_alert(
            f"Self-approval vetoed: {names.title}"[:200],
            f"{caller.actor} vetoed the held approval by {hold.approver} of {names.of};"
            f" {subject.after_veto}",
            link=subject.link(target_id),
        )


async def release_due(ctx: AppContext, subject: Subject[T]) -> int:
    """Apply every hold of this kind whose cooling-off period is over; how many."""
    async with ctx.db.read() as conn:
        if not await held.due(conn, subject.kind, limit=1):
            return 0  # an idle pass takes no write lock
    applied = 0
    async with transaction(ctx, SYSTEM) as tx:
        for hold in await held.due(tx.conn, subject.kind):
            try:
                ready = await subject.check(ctx, tx, hold.target_id, hold.target_version)
            except ApiError as exc:
                reason = subject.void_reason or exc.code
                await held.close(tx.conn, hold.id, "void", by=SYSTEM, reason=reason)
                await tx.audit(
                    f"{subject.kind}.approve_void",
                    subject.target(hold.target_id),
                    {"hold": hold.id},
                )
                continue
            await held.close(tx.conn, hold.id, "effective", by=SYSTEM, reason="cooling-off over")
            grant = Grant(hold.target_id, hold.target_version, hold.approver, hold.comment)
            await subject.apply(tx, grant, ready.facts)
            applied += 1
    return applied


async def approval_status(ctx: AppContext, subject: Subject[T], target_id: int) -> ApprovalStatus:
    """Which mode applies and why, and the latest hold (for the UI and the API);
    a due hold is applied first, so nobody sees a half state."""
    await release_due(ctx, subject)
    async with ctx.db.read() as conn:
        if await subject.names(conn, target_id) is None:
            raise subject.not_found()
        return await held.describe(ctx, conn, subject.kind, target_id)
