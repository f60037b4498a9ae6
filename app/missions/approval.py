"""Approving a mission: what the one approval flow (``app.approvals.flow``) needs
to know about a mission, and the step that makes an approval take effect.

Who may approve is decided by ``app.approvals.gate``; a one-owner
self-approval is held, announced, vetoable and released by the shared flow
(docs/security-model.md, "Approvals: two-person or one-owner"). A mission
approved (at once, or when its hold is released) moves from ``proposed`` to
``approved``, so the worker's pass starts it without a further click. A mission
changed meanwhile voids a hold.
"""

from __future__ import annotations

import aiosqlite

from app.access.caller import Caller
from app.approvals import flow
from app.approvals.links import mission_approval_link
from app.approvals.schemas import ApprovalStatus
from app.approvals.subject import Grant, Names, Ready, Subject
from app.core.context import AppContext
from app.events.transaction import Tx
from app.events.types import Category, Severity
from app.missions import store
from app.missions.schemas import MissionApproval, MissionDecision, MissionStatus, MissionView
from app.missions.service import _clean_comment, _load_for_change, _move, get_mission, not_found


async def _names(conn: aiosqlite.Connection, mission_id: int) -> Names | None:
    row = await store.mission_row_tx(conn, mission_id)
    if row is None:
        return None
    title = str(row["title"])
    return Names(
        title=f"mission {title}", own=f"mission {mission_id} ({title})", of=f"mission {mission_id}"
    )


async def _authors(conn: aiosqlite.Connection, mission_id: int) -> list[str] | None:
    row = await store.mission_row_tx(conn, mission_id)
    return None if row is None else [str(row["proposed_by"])]


async def _check(ctx: AppContext, tx: Tx, mission_id: int, version: int | None) -> Ready[None]:
    """Still proposed (approving is a move the state machine allows) at ``version``."""
    row = await _load_for_change(tx, mission_id, MissionStatus.APPROVED, version)
    return Ready(int(row["version"]), None)


async def _apply(tx: Tx, grant: Grant, _: None) -> None:
    row = await store.mission_row_tx(tx.conn, grant.target_id)
    assert row is not None
    await _move(tx, row, MissionStatus.APPROVED, decided_by=grant.approver, comment=grant.comment)
    await tx.notify(
        Category.MISSION,
        Severity.INFO,
        f"Mission approved: {row['title']}",
        f"approved by {grant.approver}",
    )


SUBJECT: Subject[None] = Subject(
    kind="mission",
    not_found=not_found,
    link=mission_approval_link,
    names=_names,
    authors=_authors,
    check=_check,
    apply=_apply,
    after_veto="it stays proposed.",
    void_reason="the mission changed",
)


async def approve_mission(
    ctx: AppContext, mission_id: int, body: MissionApproval, caller: Caller
) -> tuple[MissionView, bool]:
    """Approve (or hold the approval of) a mission; (the mission, whether held)."""
    is_held = await flow.approve(
        ctx,
        SUBJECT,
        mission_id,
        caller,
        version=body.version,
        comment=_clean_comment(body.comment),
        proof=body.proof(),
    )
    return await get_mission(ctx, mission_id), is_held


async def veto(
    ctx: AppContext, mission_id: int, decision: MissionDecision, caller: Caller
) -> MissionView:
    """Any admin stops a held self-approval; the mission stays proposed."""
    reason = _clean_comment(decision.comment)
    await flow.veto(ctx, SUBJECT, mission_id, caller, reason=reason)
    return await get_mission(ctx, mission_id)


async def approval_status(ctx: AppContext, mission_id: int) -> ApprovalStatus:
    """Which mode applies and why, and the latest hold (for the UI and the API)."""
    return await flow.approval_status(ctx, SUBJECT, mission_id)
