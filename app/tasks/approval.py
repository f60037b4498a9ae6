"""A shell needs a person: holding, approving and vetoing shell tasks
(docs/security-model.md, "A shell needs a person").

A task whose run would get a shell (``run_capability`` grants it: the task
declares ``needs_shell`` on an agent that can run commands, or the agent's
profile always runs commands) runs at once only when a person decided it: an
admin logged in to the web UI created it (``decided_by_person``,
``app/agents/shell_readers.py``), or it is a step of a mission a person
approved. Anything else (an ``operate`` token or session, an admin *token*, a
rule, a schedule firing, an agent's own follow-up work) creates it with
``approval = 'pending'``: no run is queued (``transitions.queue_if_ready``
refuses it), the owner gets a security notification linking to the task page,
and a person approves it there through the one approvals gate
(``app.approvals.gate``: two-person mode, or one-owner mode with a step-up, a
cooling-off hold and a veto; tokens never approve), by the one approval flow
(``app.approvals.flow``) to which this module passes its ``SUBJECT``. Approval
covers the version read; cancelling the task refuses it.
"""

from __future__ import annotations

from typing import Any

import aiosqlite

from app.access.caller import Caller
from app.agents.service import capability_of
from app.approvals import flow
from app.approvals.links import task_approval_link
from app.approvals.schemas import ApprovalStatus, TaskApproval
from app.approvals.subject import Grant, Names, Ready, Subject
from app.capability.model import run_capability
from app.core.context import AppContext
from app.core.errors import ApiError
from app.events.transaction import Tx
from app.profiles.catalog import profile_traits
from app.security import audit
from app.tasks import store, transitions
from app.tasks.schemas import TaskStatus

ACTION = "task.approve"
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
    if kind in audit.AUTHORING_ACTIONS and ident.isdigit():
        return [created_by, *sorted(await audit.authors(conn, created_by))]
    return [created_by]


async def _names(conn: aiosqlite.Connection, task_id: int) -> Names | None:
    if await store.task_row_tx(conn, task_id) is None:
        return None
    return Names(
        title=f"shell task {task_id}",
        own=f"task {task_id}, whose run gets a shell,",
        of=f"task {task_id}",
    )


async def _authors(conn: aiosqlite.Connection, task_id: int) -> list[str] | None:
    row = await store.task_row_tx(conn, task_id)
    return None if row is None else await authors(conn, str(row["created_by"]))


async def _checked(ctx: AppContext, tx: Tx, task_id: int, version: int | None) -> Ready[None]:
    """Whether the task can be approved at ``version``: it waits for approval, has
    not run or ended, and is the version read."""
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
    return Ready(int(row["version"]), None)


async def _apply(tx: Tx, grant: Grant, _: None) -> None:
    """The approval takes effect: the task's run is queued (through the state
    machine's one gate) and the owner hears of it."""
    task_id, version, approver = grant.target_id, grant.version, grant.approver
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


SUBJECT: Subject[None] = Subject(
    kind="task",
    not_found=_not_found,
    link=task_approval_link,
    names=_names,
    authors=_authors,
    check=_checked,
    apply=_apply,
    after_veto="it keeps waiting for approval and does not run.",
)


async def approve_task(ctx: AppContext, task_id: int, body: TaskApproval, caller: Caller) -> bool:
    """Approve (or hold the approval of) a held shell task; whether held."""
    return await flow.approve(
        ctx,
        SUBJECT,
        task_id,
        caller,
        version=body.version,
        comment="",
        proof=body.proof(),
    )


async def veto(ctx: AppContext, task_id: int, caller: Caller) -> None:
    """Any admin stops a held self-approval; the task keeps waiting (no run)."""
    await flow.veto(ctx, SUBJECT, task_id, caller)


async def approval_status(ctx: AppContext, task_id: int) -> ApprovalStatus:
    """Which mode applies and why, and the latest hold (for the UI and the API)."""
    return await flow.approval_status(ctx, SUBJECT, task_id)
