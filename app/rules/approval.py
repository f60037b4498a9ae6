"""Approving a rule that starts an agent with shell access (F8): what the one
approval flow (``app.approvals.flow``) needs to know about a rule, the rule's
own checks, and the step that makes an approval take effect.

Who may approve is decided in one place (``app.approvals.gate``): a person in a
web UI session, in two-person mode never an author of the rule (its creator or
anyone who changed it, by any of their credentials). In one-owner mode the
only admin may approve their own rule with a fresh step-up; the shared flow
then holds the approval for the cooling-off period, announces it, lets any
admin veto it and applies it from the worker's pass or the next look at the
rule. The approval covers the exact version read; a rule changed meanwhile
voids a hold. An approved rule still has to be enabled.
"""

from __future__ import annotations

import aiosqlite
from pydantic import ValidationError

from app.access.caller import Caller
from app.approvals import flow
from app.approvals.links import rule_approval_link
from app.approvals.schemas import ApprovalStatus
from app.approvals.subject import Grant, Names, Ready, Subject
from app.core.clock import now_iso
from app.core.context import AppContext
from app.core.errors import ApiError
from app.events.transaction import Tx
from app.events.types import EventType
from app.rules import store
from app.rules.engine import stored_spec
from app.rules.schemas import Approval, RuleApproval, RuleView
from app.rules.service import _shell_agents, get_rule

ACTION = "rule.approve"

#: what approving needs that the check found: the shell agents and the rule's name
Shell = tuple[list[int], str]


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "no such rule")


async def _names(conn: aiosqlite.Connection, rule_id: int) -> Names | None:
    row = await store.rule_row_tx(conn, rule_id)
    if row is None:
        return None
    name = str(row["name"])
    return Names(
        title=f"rule {name}",
        own=f"trigger rule {rule_id} ({name}), which starts an agent with shell access,",
        of=f"trigger rule {rule_id}",
    )


async def _authors(conn: aiosqlite.Connection, rule_id: int) -> list[str] | None:
    row = await store.rule_row_tx(conn, rule_id)
    if row is None:
        return None
    return [str(row["created_by"]), *await store.rule_authors(conn, rule_id)]


async def _checked(ctx: AppContext, tx: Tx, rule_id: int, version: int | None) -> Ready[Shell]:
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
    return Ready(int(row["version"]), (shell, spec.name))


async def _apply(tx: Tx, grant: Grant, facts: Shell) -> None:
    """The rule is approved at the version read (it still has to be enabled)."""
    rule_id, version, approver = grant.target_id, grant.version, grant.approver
    shell, name = facts
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


SUBJECT: Subject[Shell] = Subject(
    kind="rule",
    not_found=_not_found,
    link=rule_approval_link,
    names=_names,
    authors=_authors,
    check=_checked,
    apply=_apply,
    after_veto="it stays pending and disabled.",
)


async def approve_rule(
    ctx: AppContext, rule_id: int, body: RuleApproval, caller: Caller
) -> tuple[RuleView, bool]:
    """Approve (or hold the approval of) a rule; (the rule, whether held)."""
    is_held = await flow.approve(
        ctx,
        SUBJECT,
        rule_id,
        caller,
        version=body.version,
        comment="",
        proof=body.proof(),
    )
    return await get_rule(ctx, rule_id), is_held


async def veto(ctx: AppContext, rule_id: int, caller: Caller) -> RuleView:
    """Any admin stops a held self-approval; the rule stays pending (and disabled)."""
    await flow.veto(ctx, SUBJECT, rule_id, caller)
    return await get_rule(ctx, rule_id)


async def approval_status(ctx: AppContext, rule_id: int) -> ApprovalStatus:
    """Which mode applies and why, and the latest hold (for the UI and the API)."""
    return await flow.approval_status(ctx, SUBJECT, rule_id)
