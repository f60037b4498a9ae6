"""Held one-owner approvals: recorded, announced, vetoed, made effective.

A self-approval in one-owner mode (``app.approvals.gate``) is not applied at
once: a row in ``held_approvals`` says who approved which version and when it
takes effect. Until then any admin may veto it; after it, the worker's pass
(``release_due``, every ``MC_SCHEDULE_POLL_S``) or the next look at the work
applies it through the mission's or rule's own approval code. State lives
only in the database, so a restart leaves no half state: a due hold is
applied by whichever process looks first, exactly once (conditional update).
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from app.approvals import gate
from app.approvals.schemas import ApprovalStatus, HoldView
from app.core.clock import in_future, now_iso
from app.core.context import AppContext
from app.core.database import Row

#: how the audit log and the UI name what a hold is about
KINDS = ("mission", "rule", "task")


@dataclass(frozen=True)
class Hold:
    id: int
    kind: str
    target_id: int
    target_version: int
    approver: str
    comment: str
    created_at: str
    effective_at: str
    state: str
    closed_by: str | None
    closed_at: str | None


def hold_view(row: Row | aiosqlite.Row) -> Hold:
    return Hold(
        id=int(row["id"]),
        kind=str(row["kind"]),
        target_id=int(row["target_id"]),
        target_version=int(row["target_version"]),
        approver=str(row["approver"]),
        comment=str(row["comment"]),
        created_at=str(row["created_at"]),
        effective_at=str(row["effective_at"]),
        state=str(row["state"]),
        closed_by=row["closed_by"],
        closed_at=row["closed_at"],
    )


_COLUMNS = (
    "id, kind, target_id, target_version, approver, comment, created_at, effective_at, state,"
    " closed_by, closed_at"
)


async def insert(
    conn: aiosqlite.Connection,
    *,
    kind: str,
    target_id: int,
    target_version: int,
    approver: str,
    approver_user_id: int,
    comment: str,
    cooling_off_s: int,
) -> Hold:
    now = now_iso()
    cursor = await conn.execute(
        "INSERT INTO held_approvals (kind, target_id, target_version, approver,"
        " approver_user_id, comment, created_at, effective_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            kind,
            target_id,
            target_version,
            approver,
            approver_user_id,
            comment,
            now,
            in_future(seconds=cooling_off_s),
        ),
    )
    hold = await by_id(conn, int(cursor.lastrowid or 0))
    assert hold is not None
    return hold


async def by_id(conn: aiosqlite.Connection, hold_id: int) -> Hold | None:
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM held_approvals WHERE id = ?", (hold_id,)
    ) as cursor:
        row = await cursor.fetchone()
    return hold_view(row) if row else None


async def open_hold(conn: aiosqlite.Connection, kind: str, target_id: int) -> Hold | None:
    """The hold waiting on this mission or rule, if any."""
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM held_approvals WHERE kind = ? AND target_id = ?"
        " AND state = 'held'",
        (kind, target_id),
    ) as cursor:
        row = await cursor.fetchone()
    return hold_view(row) if row else None


async def latest(conn: aiosqlite.Connection, kind: str, target_id: int) -> Hold | None:
    """The most recent hold of this mission or rule (open or closed), for display."""
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM held_approvals WHERE kind = ? AND target_id = ?"
        " ORDER BY id DESC LIMIT 1",
        (kind, target_id),
    ) as cursor:
        row = await cursor.fetchone()
    return hold_view(row) if row else None


async def due(conn: aiosqlite.Connection, kind: str, limit: int = 50) -> list[Hold]:
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM held_approvals WHERE state = 'held' AND kind = ?"
        " AND effective_at <= ? ORDER BY id LIMIT ?",
        (kind, now_iso(), limit),
    ) as cursor:
        rows = await cursor.fetchall()
    return [hold_view(r) for r in rows]


async def close(
    conn: aiosqlite.Connection, hold_id: int, state: str, *, by: str, reason: str
) -> bool:
    """Close an open hold (effective, vetoed or void); False when it was not open."""
    cursor = await conn.execute(
        "UPDATE held_approvals SET state = ?, closed_by = ?, closed_at = ?, close_reason = ?"
        " WHERE id = ? AND state = 'held'",
        (state, by, now_iso(), reason[:500], hold_id),
    )
    return cursor.rowcount == 1


async def describe(
    ctx: AppContext, conn: aiosqlite.Connection, kind: str, target_id: int
) -> ApprovalStatus:
    """Which mode applies and why, and the latest hold of this mission or rule."""
    mode = await gate.approval_mode(conn, ctx)
    hold = await latest(conn, kind, target_id)
    return ApprovalStatus(
        mode=mode.mode.value,
        why=mode.why,
        admins=mode.admins,
        cooling_off_seconds=ctx.settings.approval_cooling_off_seconds,
        hold=HoldView(
            state=hold.state,
            approver=hold.approver,
            created_at=hold.created_at,
            effective_at=hold.effective_at,
            closed_by=hold.closed_by,
            closed_at=hold.closed_at,
        )
        if hold
        else None,
    )
