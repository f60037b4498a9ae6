"""A shell needs a person: holding, approving and vetoing shell tasks
(docs/security-model.md, "A shell needs a person").

A task whose run would get a shell (``run_capability`` grants it: the task
declares ``needs_shell`` on an agent that can run commands, or the agent's
profile always runs commands) runs at once only when a person decided it: an
admin logged in to the web UI created it (``decided_by_person``,
``app/security/shell_readers.py``), or it is a step of a mission a person
approved. Anything else (an ``operate`` token or session, an admin *token*, a
rule, a schedule firing, an agent's own follow-up work) creates it with
``approval = 'pending'``: no run is queued (``transitions.queue_if_ready``
refuses it), the owner gets a security notification linking to the task page,
and a person approves it there through the one approvals gate
(``app.approvals.gate``: two-person mode, or one-owner mode with a step-up, a
cooling-off hold and a veto; tokens never approve). Approval covers the version
read; cancelling the task refuses it.
"""

from __future__ import annotations

from typing import Any

import aiosqlite

from app.agents.service import capability_of
from app.approvals import gate, held
from app.approvals.links import task_approval_link
from app.approvals.schemas import ApprovalStatus, TaskApproval
from app.auth import step_up
from app.capability.model import run_capability
from app.core.context import AppContext
from app.core.errors import ApiError
from app.events.transaction import Tx, transaction
from app.rules import store as rules_store
from app.runner.catalog import profile_traits
from app.security.principal import Principal
from app.security.refusals import record_refusal
from app.tasks import store, transitions
from app.tasks.schemas import TaskStatus

KIND = "task"
ACTION = "task.approve"
SYSTEM = "system:approval-hold"
PENDING = "pending"


async def run_gets_shell(
    ctx: AppContext, conn: aiosqlite.Connection, agent_id: int, needs_shell: bool
) -> bool:
    """Whether a run of a task for ``agent_id`` would get a shell: the one effective
    capability (``app/capability/model.py``). An unknown agent or profile counts
    as yes (fail closed)."""
    async with conn.execute("SELECT * FROM agents WHERE id = ?", (agent_id,)) as cursor:
        agent = await cursor.fetchone()
    if agent is None:
        return True
    capability = capability_of(ctx.settings, agent)
    traits = profile_traits(ctx.settings).get(str(agent["profile"]))
    if traits is None:
        return capability.shell
    return run_capability(capability, traits, task_needs_shell=needs_shell).shell


async def hold_if_needed(
    ctx: AppContext, tx: Tx, task_id: int, values: dict[str, Any], *, decided_by_person: bool
) -> bool:
    """At creation, before any run is queued: hold a shell task no person decided.
    Returns whether it is held."""
    if decided_by_person:
        return False
    if not await run_gets_shell(ctx, tx.conn, int(values["agent_id"]), bool(values["needs_shell"])):
        return False
    await store.set_approval(tx.conn, task_id, PENDING, expected="")
    link = task_approval_link(task_id)
    await tx.audit(
        "task.held_for_approval",
        f"task:{task_id}",
        {"agent_id": values["agent_id"], "created_by": values["created_by"]},
    )
    await tx.security_alert(
        f"Shell task waits for approval: {values['title']}"[:200],
        f"{values['created_by']} created task {task_id} for agent {values['agent_id']}; its run"
        " would get a shell, so it waits until an admin approves it in the web UI"
        f" ({link}). If you did not expect it, cancel it there.",
        link=link,
    )
    return True


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "no such task")


async def authors(conn: aiosqlite.Connection, created_by: str) -> list[str]:
    """Who wrote the task's words: its creator, and for work made by a rule or a
    schedule, whoever wrote or changed that rule or schedule (people, not
    automation: the two-person rule compares humans)."""
    kind, _, ident = created_by.partition(":")
    if kind == "rule" and ident.isdigit():
        return [created_by, *await rules_store.rule_authors(conn, int(ident))]
    if kind == "schedule" and ident.isdigit():
        async with conn.execute(
            "SELECT DISTINCT actor FROM audit_log WHERE target = ? AND outcome = 'ok'"
            " AND action IN ('schedule.create', 'schedule.update')",
            (created_by,),
        ) as cursor:
            return [created_by, *(str(row[0]) for row in await cursor.fetchall())]
    return [created_by]


async def _checked(tx: Tx, task_id: int, version: int) -> aiosqlite.Row:
    """The task's row, when it can be approved at ``version``."""
    row = await store.task_row_tx(tx.conn, task_id)
    if row is None:
        raise _not_found()
    if row["approval"] != PENDING:
        raise ApiError(409, "approval_not_needed", "this task does not wait for approval")
    if row["status"] not in (TaskStatus.QUEUED.value, TaskStatus.BLOCKED.value):
        raise ApiError(409, "invalid_transition", f"the task is {row['status']}")
    if int(row["version"]) != version:
        raise ApiError(
            409,
            "conflict",
            "the task was changed since you read it; review it again",
            {"current_version": row["version"]},
        )
    return row


async def approve_task(
    ctx: AppContext, task_id: int, body: TaskApproval, principal: Principal, client: str
) -> bool:
    """Approve (or hold the approval of) a held shell task; whether held."""
    proof = body.proof()
    if proof is not None:
        await step_up.step_up(ctx, principal, client, proof)
    verdict: gate.Verdict | None = None
    async with transaction(ctx, principal.actor, client) as tx:
        row = await store.task_row_tx(tx.conn, task_id)
        if row is None:
            raise _not_found()
        wrote = await authors(tx.conn, str(row["created_by"]))
        verdict = await gate.decide(ctx, tx.conn, principal, wrote, what="task")
        if verdict.outcome is not gate.Outcome.REFUSE:
            await _checked(tx, task_id, body.version)
            if await held.open_hold(tx.conn, KIND, task_id) is not None:
                raise ApiError(
                    409,
                    "approval_held",
                    "an approval of this task is already held: wait for it or veto it",
                )
            if verdict.outcome is gate.Outcome.APPROVE:
                await _approve(tx, task_id, body.version, principal.actor)
            else:
                await _hold(ctx, tx, task_id, body.version, principal, verdict.mode)
    if verdict.outcome is gate.Outcome.REFUSE:
        await record_refusal(
            ctx,
            actor=principal.actor,
            client=client,
            action=ACTION,
            target=f"task:{task_id}",
            reason=verdict.code,
        )
        raise ApiError(403, verdict.code, verdict.message)
    return verdict.outcome is gate.Outcome.HOLD


async def _approve(tx: Tx, task_id: int, version: int, approver: str) -> None:
    """The approval takes effect: the task's run is queued (through the state
    machine's one gate) and the owner hears of it."""
    if not await store.set_approval(
        tx.conn, task_id, "approved", expected=PENDING, version=version, approved_by=approver
    ):
        raise ApiError(409, "conflict", "the task was changed since you read it")
    row = await store.task_row_tx(tx.conn, task_id)
    assert row is not None
    queued = None
    if row["status"] == TaskStatus.QUEUED.value:
        queued = await transitions.queue_if_ready(tx, task_id, int(row["agent_id"]))
    await tx.audit(
        ACTION,
        f"task:{task_id}",
        {"version": version, "created_by": row["created_by"], "conversation_id": queued},
    )
    await tx.security_alert(
        f"Shell task approved: {row['title']}"[:200],
        f"{approver} approved task {task_id} by {row['created_by']} for agent"
        f" {row['agent_id']}; its run gets a shell.",
        link=task_approval_link(task_id),
    )


async def _hold(
    ctx: AppContext,
    tx: Tx,
    task_id: int,
    version: int,
    principal: Principal,
    mode: gate.ModeInfo,
) -> None:
    assert principal.user_id is not None
    hold = await held.insert(
        tx.conn,
        kind=KIND,
        target_id=task_id,
        target_version=version,
        approver=principal.actor,
        approver_user_id=principal.user_id,
        comment="",
        cooling_off_s=ctx.settings.approval_cooling_off_seconds,
    )
    await step_up.consume(tx.conn, principal)
    await tx.audit(
        "task.approve_held",
        f"task:{task_id}",
        {"version": version, "effective_at": hold.effective_at, "mode": mode.mode},
    )
    link = task_approval_link(task_id)
    await tx.security_alert(
        f"Self-approval held: shell task {task_id}",
        f"{principal.actor} approved their own task {task_id}, whose run gets a shell, in"
        f" one-owner mode ({mode.why}). It takes effect at {hold.effective_at} unless an admin"
        f" vetoes it on {link}. If this was not you, veto it and change your password.",
        link=link,
    )


async def veto(ctx: AppContext, task_id: int, principal: Principal, client: str) -> None:
    """Any admin stops a held self-approval; the task keeps waiting (no run)."""
    async with transaction(ctx, principal.actor, client) as tx:
        if await store.task_row_tx(tx.conn, task_id) is None:
            raise _not_found()
        hold = await held.open_hold(tx.conn, KIND, task_id)
        if hold is None:
            raise ApiError(
                409, "nothing_held", "no approval of this task is waiting to take effect"
            )
        await held.close(tx.conn, hold.id, "vetoed", by=principal.actor, reason="vetoed")
        await tx.audit("task.veto", f"task:{task_id}", {"hold": hold.id, "approver": hold.approver})
        await tx.security_alert(
            f"Self-approval vetoed: shell task {task_id}",
            f"{principal.actor} vetoed the held approval by {hold.approver} of task {task_id};"
            " it keeps waiting for approval and does not run.",
            link=task_approval_link(task_id),
        )


async def release_due(ctx: AppContext) -> int:
    """Apply every hold whose cooling-off period is over (the worker's pass)."""
    async with ctx.db.read() as conn:
        if not await held.due(conn, KIND, limit=1):
            return 0  # an idle pass takes no write lock
    applied = 0
    async with transaction(ctx, SYSTEM) as tx:
        for hold in await held.due(tx.conn, KIND):
            try:
                await _checked(tx, hold.target_id, hold.target_version)
            except ApiError as exc:
                await held.close(tx.conn, hold.id, "void", by=SYSTEM, reason=exc.code)
                await tx.audit("task.approve_void", f"task:{hold.target_id}", {"hold": hold.id})
                continue
            await held.close(tx.conn, hold.id, "effective", by=SYSTEM, reason="cooling-off over")
            await _approve(tx, hold.target_id, hold.target_version, hold.approver)
            applied += 1
    return applied


async def approval_status(ctx: AppContext, task_id: int) -> ApprovalStatus:
    """Which mode applies and why, and the latest hold (for the UI and the API)."""
    await release_due(ctx)
    async with ctx.db.read() as conn:
        if await store.task_row_tx(conn, task_id) is None:
            raise _not_found()
        return await held.describe(ctx, conn, KIND, task_id)
