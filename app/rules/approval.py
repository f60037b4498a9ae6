"""Approving a rule that starts an agent with shell access (F8).

Who may approve is decided in one place (``app.approvals.gate``): a person in a
web UI session, in two-person mode never an author of the rule (its creator or
anyone who changed it, by any of their credentials). In one-owner mode the
only admin may approve their own rule with a fresh step-up; the approval is
then held for the cooling-off period, announced as a security notification and
vetoable by any admin, and applied by the worker's pass (``release_due``) or
the next look at the rule. The approval covers the exact version read; a rule
changed meanwhile voids a hold. An approved rule still has to be enabled.
"""

from __future__ import annotations

from pydantic import ValidationError

from app.approvals import gate, held
from app.approvals.links import rule_approval_link
from app.approvals.schemas import ApprovalStatus, RuleApproval
from app.auth import step_up
from app.core.clock import now_iso
from app.core.context import AppContext
from app.core.errors import ApiError
from app.events.transaction import Tx, transaction
from app.events.types import EventType
from app.rules import store
from app.rules.engine import stored_spec
from app.rules.schemas import Approval, RuleView
from app.rules.service import _shell_agents, get_rule
from app.security.principal import Principal
from app.security.refusals import record_refusal

KIND = "rule"
ACTION = "rule.approve"
SYSTEM = "system:approval-hold"


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "no such rule")


async def _checked(ctx: AppContext, tx: Tx, rule_id: int, version: int) -> tuple[list[int], str]:
    """The rule's shell agents and name, when it can be approved at ``version``."""
    row = await store.rule_row_tx(tx.conn, rule_id)
    if row is None:
        raise _not_found()
    if row["version"] != version:
        raise ApiError(
            409,
            "conflict",
            "the rule was changed since you read it; review it again",
            {"current_version": row["version"]},
        )
    if row["approval"] == Approval.APPROVED.value:
        raise ApiError(409, "already_approved", "this rule is already approved")
    try:
        spec = stored_spec(row)
    except ValidationError:
        raise ApiError(
            409, "invalid_rule", "the stored rule no longer validates; change it first"
        ) from None
    shell = await _shell_agents(ctx, tx.conn, spec)
    if not shell:
        raise ApiError(
            409,
            "approval_not_needed",
            "this rule starts no agent with shell access; it needs no approval",
        )
    return shell, spec.name


async def approve_rule(
    ctx: AppContext, rule_id: int, body: RuleApproval, principal: Principal, client: str
) -> tuple[RuleView, bool]:
    """Approve (or hold the approval of) a rule; (the rule, whether held)."""
    proof = body.proof()
    if proof is not None:
        await step_up.step_up(ctx, principal, client, proof)
    verdict: gate.Verdict | None = None
    async with transaction(ctx, principal.actor, client) as tx:
        row = await store.rule_row_tx(tx.conn, rule_id)
        if row is None:
            raise _not_found()
        authors = await store.rule_authors(tx.conn, rule_id)
        # People, not credentials: an author's token acts for its owner.
        verdict = await gate.decide(
            ctx, tx.conn, principal, [str(row["created_by"]), *authors], what="rule"
        )
        if verdict.outcome is not gate.Outcome.REFUSE:
            shell, name = await _checked(ctx, tx, rule_id, body.version)
            if await held.open_hold(tx.conn, KIND, rule_id) is not None:
                raise ApiError(
                    409,
                    "approval_held",
                    "an approval of this rule is already held: wait for it or veto it",
                )
            if verdict.outcome is gate.Outcome.APPROVE:
                await _approve(tx, rule_id, body.version, principal.actor, shell, name)
            else:
                await _hold(ctx, tx, rule_id, body.version, principal, name, verdict.mode)
    if verdict.outcome is gate.Outcome.REFUSE:
        await record_refusal(
            ctx,
            actor=principal.actor,
            client=client,
            action=ACTION,
            target=store.rule_target(rule_id),
            reason=verdict.code,
        )
        raise ApiError(403, verdict.code, verdict.message)
    return await get_rule(ctx, rule_id), verdict.outcome is gate.Outcome.HOLD


async def _approve(
    tx: Tx, rule_id: int, version: int, approver: str, shell: list[int], name: str
) -> None:
    row = await store.rule_row_tx(tx.conn, rule_id)
    assert row is not None
    changes = {
        "approval": Approval.APPROVED.value,
        "approved_by": approver,
        "approved_at": now_iso(),
    }
    if not await store.update_rule(tx.conn, rule_id, version, changes):
        raise ApiError(409, "conflict", "the rule was changed since you read it")
    await tx.audit(
        ACTION,
        store.rule_target(rule_id),
        {
            "version": version,
            "shell_agents": shell,
            "created_by": row["created_by"],
            "approved_by": approver,
            "rule": stored_spec(row).model_dump(mode="json"),
        },
    )
    await tx.emit(EventType.RULE_APPROVED, "rule", rule_id, {"name": name, "approved_by": approver})
    await tx.security_alert(
        f"Rule {rule_id} approved to start a shell agent",
        f"{approver} approved trigger rule {rule_id} ({name}) created by {row['created_by']};"
        f" it may start agent(s) {shell}, which have shell access, once enabled.",
    )


async def _hold(
    ctx: AppContext,
    tx: Tx,
    rule_id: int,
    version: int,
    principal: Principal,
    name: str,
    mode: gate.ModeInfo,
) -> None:
    assert principal.user_id is not None
    hold = await held.insert(
        tx.conn,
        kind=KIND,
        target_id=rule_id,
        target_version=version,
        approver=principal.actor,
        approver_user_id=principal.user_id,
        comment="",
        cooling_off_s=ctx.settings.approval_cooling_off_seconds,
    )
    await step_up.consume(tx.conn, principal)
    await tx.audit(
        "rule.approve_held",
        store.rule_target(rule_id),
        {"version": version, "effective_at": hold.effective_at, "mode": mode.mode},
    )
    await tx.security_alert(
        f"Self-approval held: rule {name}"[:200],
        f"{principal.actor} approved their own trigger rule {rule_id} ({name}), which starts an"
        f" agent with shell access, in one-owner mode ({mode.why}). It takes effect at"
        f" {hold.effective_at} unless an admin vetoes it on {rule_approval_link(rule_id)}. If"
        " this was not you, veto it and change your password.",
        link=rule_approval_link(rule_id),
    )


async def veto(ctx: AppContext, rule_id: int, principal: Principal, client: str) -> RuleView:
    """Any admin stops a held self-approval; the rule stays pending (and disabled)."""
    async with transaction(ctx, principal.actor, client) as tx:
        row = await store.rule_row_tx(tx.conn, rule_id)
        if row is None:
            raise _not_found()
        hold = await held.open_hold(tx.conn, KIND, rule_id)
        if hold is None:
            raise ApiError(
                409, "nothing_held", "no approval of this rule is waiting to take effect"
            )
        await held.close(tx.conn, hold.id, "vetoed", by=principal.actor, reason="vetoed")
        await tx.audit(
            "rule.veto", store.rule_target(rule_id), {"hold": hold.id, "approver": hold.approver}
        )
        await tx.security_alert(
            f"Self-approval vetoed: rule {row['name']}"[:200],
            f"{principal.actor} vetoed the held approval by {hold.approver} of trigger rule"
            f" {rule_id}; it stays pending and disabled.",
            link=rule_approval_link(rule_id),
        )
    return await get_rule(ctx, rule_id)


async def release_due(ctx: AppContext) -> int:
    """Apply every hold whose cooling-off period is over (the worker's pass)."""
    async with ctx.db.read() as conn:
        if not await held.due(conn, KIND, limit=1):
            return 0  # an idle pass takes no write lock
    applied = 0
    async with transaction(ctx, SYSTEM) as tx:
        for hold in await held.due(tx.conn, KIND):
            try:
                shell, name = await _checked(ctx, tx, hold.target_id, hold.target_version)
            except ApiError as exc:
                await held.close(tx.conn, hold.id, "void", by=SYSTEM, reason=exc.code)
                await tx.audit(
                    "rule.approve_void", store.rule_target(hold.target_id), {"hold": hold.id}
                )
                continue
            await held.close(tx.conn, hold.id, "effective", by=SYSTEM, reason="cooling-off over")
            await _approve(tx, hold.target_id, hold.target_version, hold.approver, shell, name)
            applied += 1
    return applied


async def approval_status(ctx: AppContext, rule_id: int) -> ApprovalStatus:
    """Which mode applies and why, and the latest hold (for the UI and the API)."""
    await release_due(ctx)
    async with ctx.db.read() as conn:
        if await store.rule_row_tx(conn, rule_id) is None:
            raise _not_found()
        return await held.describe(ctx, conn, KIND, rule_id)
