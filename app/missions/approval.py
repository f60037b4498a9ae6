"""Approving a mission: who may (``app.approvals.gate``), held one-owner approvals,
vetoes, and applying a hold once its cooling-off period is over.

A second person's approval takes effect at once. A one-owner self-approval
(with a fresh step-up) is held: the mission stays ``proposed`` with an open
hold, a security notification goes out at once, any admin may veto it, and
when the period is over the worker's pass (``release_due``) or the next look at
the mission approves it, so it starts without a further click. A refused
approval is audited and raises a security alert (``record_refusal``).
"""

from __future__ import annotations

from app.approvals import gate, held
from app.approvals.links import mission_approval_link
from app.approvals.schemas import ApprovalStatus, MissionApproval
from app.auth import step_up
from app.core.context import AppContext
from app.core.errors import ApiError
from app.events.transaction import Tx, transaction
from app.missions import store
from app.missions.schemas import MissionDecision, MissionStatus, MissionView
from app.missions.service import _clean_comment, _load_for_change, _move, get_mission, not_found
from app.policies.model import Category, Severity
from app.security.principal import Principal
from app.security.refusals import record_refusal

KIND = "mission"
SYSTEM = "system:approval-hold"


async def _refuse(
    ctx: AppContext, principal: Principal, client: str, mission_id: int, code: str, message: str
) -> ApiError:
    await record_refusal(
        ctx,
        actor=principal.actor,
        client=client,
        action="mission.approve",
        target=f"mission:{mission_id}",
        reason=code,
    )
    return ApiError(403, code, message)


async def approve_mission(
    ctx: AppContext, mission_id: int, body: MissionApproval, principal: Principal, client: str
) -> tuple[MissionView, bool]:
    """Approve (or hold the approval of) a mission; (the mission, whether held)."""
    proof = body.proof()
    if proof is not None:
        await step_up.step_up(ctx, principal, client, proof)
    verdict: gate.Verdict | None = None
    async with transaction(ctx, principal.actor, client) as tx:
        row = await store.mission_row_tx(tx.conn, mission_id)
        if row is None:
            raise not_found()
        # People, not credentials: the proposer's token acts for its owner.
        verdict = await gate.decide(
            ctx, tx.conn, principal, [str(row["proposed_by"])], what="mission"
        )
        if verdict.outcome is not gate.Outcome.REFUSE:
            row = await _load_for_change(tx, mission_id, MissionStatus.APPROVED, body.version)
            if await held.open_hold(tx.conn, KIND, mission_id) is not None:
                raise ApiError(
                    409,
                    "approval_held",
                    "an approval of this mission is already held: wait for it or veto it",
                )
            comment = _clean_comment(body.comment)
            if verdict.outcome is gate.Outcome.APPROVE:
                await _approve(tx, mission_id, principal.actor, comment)
            else:
                await _hold(ctx, tx, mission_id, principal, comment, verdict.mode)
    if verdict.outcome is gate.Outcome.REFUSE:
        raise await _refuse(ctx, principal, client, mission_id, verdict.code, verdict.message)
    return await get_mission(ctx, mission_id), verdict.outcome is gate.Outcome.HOLD


async def _approve(tx: Tx, mission_id: int, approver: str, comment: str) -> None:
    row = await store.mission_row_tx(tx.conn, mission_id)
    assert row is not None
    await _move(tx, row, MissionStatus.APPROVED, decided_by=approver, comment=comment)
    await tx.notify(
        Category.MISSION,
        Severity.INFO,
        f"Mission approved: {row['title']}",
        f"approved by {approver}",
    )


async def _hold(
    ctx: AppContext,
    tx: Tx,
    mission_id: int,
    principal: Principal,
    comment: str,
    mode: gate.ModeInfo,
) -> None:
    row = await store.mission_row_tx(tx.conn, mission_id)
    assert row is not None and principal.user_id is not None
    hold = await held.insert(
        tx.conn,
        kind=KIND,
        target_id=mission_id,
        target_version=int(row["version"]),
        approver=principal.actor,
        approver_user_id=principal.user_id,
        comment=comment,
        cooling_off_s=ctx.settings.approval_cooling_off_seconds,
    )
    await step_up.consume(tx.conn, principal)
    await tx.audit(
        "mission.approve_held",
        f"mission:{mission_id}",
        {"version": hold.target_version, "effective_at": hold.effective_at, "mode": mode.mode},
    )
    await tx.security_alert(
        f"Self-approval held: mission {row['title']}"[:200],
        f"{principal.actor} approved their own mission {mission_id} ({row['title']}) in"
        f" one-owner mode ({mode.why}). It takes effect at {hold.effective_at} unless an admin"
        f" vetoes it on {mission_approval_link(mission_id)}. If this was not you, veto it and"
        " change your password.",
        link=mission_approval_link(mission_id),
    )


async def veto(
    ctx: AppContext, mission_id: int, decision: MissionDecision, principal: Principal, client: str
) -> MissionView:
    """Any admin stops a held self-approval; the mission stays proposed."""
    async with transaction(ctx, principal.actor, client) as tx:
        row = await store.mission_row_tx(tx.conn, mission_id)
        if row is None:
            raise not_found()
        hold = await held.open_hold(tx.conn, KIND, mission_id)
        if hold is None:
            raise ApiError(
                409, "nothing_held", "no approval of this mission is waiting to take effect"
            )
        comment = _clean_comment(decision.comment)
        await held.close(tx.conn, hold.id, "vetoed", by=principal.actor, reason=comment)
        await tx.audit(
            "mission.veto", f"mission:{mission_id}", {"hold": hold.id, "approver": hold.approver}
        )
        await tx.security_alert(
            f"Self-approval vetoed: mission {row['title']}"[:200],
            f"{principal.actor} vetoed the held approval by {hold.approver} of mission"
            f" {mission_id}; it stays proposed.",
            link=mission_approval_link(mission_id),
        )
    return await get_mission(ctx, mission_id)


async def release_due(ctx: AppContext) -> int:
    """Apply every hold whose cooling-off period is over (the worker's pass)."""
    async with ctx.db.read() as conn:
        if not await held.due(conn, KIND, limit=1):
            return 0  # an idle pass takes no write lock
    applied = 0
    async with transaction(ctx, SYSTEM) as tx:
        for hold in await held.due(tx.conn, KIND):
            row = await store.mission_row_tx(tx.conn, hold.target_id)
            current = (
                row is not None
                and row["status"] == MissionStatus.PROPOSED.value
                and int(row["version"]) == hold.target_version
            )
            if not current:
                await held.close(tx.conn, hold.id, "void", by=SYSTEM, reason="the mission changed")
                await tx.audit(
                    "mission.approve_void", f"mission:{hold.target_id}", {"hold": hold.id}
                )
                continue
            await held.close(tx.conn, hold.id, "effective", by=SYSTEM, reason="cooling-off over")
            await _approve(tx, hold.target_id, hold.approver, hold.comment)
            applied += 1
    return applied


async def approval_status(ctx: AppContext, mission_id: int) -> ApprovalStatus:
    """Which mode applies and why, and the latest hold (for the UI and the API)."""
    await release_due(ctx)
    async with ctx.db.read() as conn:
        if await store.mission_row_tx(conn, mission_id) is None:
            raise not_found()
        return await held.describe(ctx, conn, KIND, mission_id)
