"""How a mission follows its work: the calls other domains make to move a mission.

The mission's own decisions (propose, approve, reject, cancel) are in
:mod:`app.missions.service`; the state machine (``TRANSITIONS``, ``_move``) is
there too. This module is what the rest of the system calls, each inside the
caller's write transaction:

* :func:`task_created`: the task domain created a task of the mission; an
  approved mission starts running.
* :func:`task_ended`: the task domain ended a task of the mission (missions
  follow tasks through this one call, made where a task moves); a failed task
  fails its running mission, the last succeeded step completes it.
* :func:`add_spend`: the worker adds a run's usage to the mission's running
  totals.
* :func:`fail_if_over_bound`: the worker, after a run's usage was added: a
  mission that went over a bound is failed and escalated, which refuses its
  further runs.

The direction is one way: the task domain and the worker call this module,
and nothing in this package imports the task domain. Cancelling a mission
cancels its open tasks through the canceller the task domain registers
(:func:`app.missions.service.register_open_work_canceller`).

"Over a bound" is ``spent > bound`` (the worker refuses to *start* a run at
``spent >= bound``: ``app/runner/accounting.py``).
"""

from __future__ import annotations

import json

import aiosqlite

from app.core.database import Row
from app.events.transaction import Tx
from app.events.types import Category, EventType, Severity
from app.missions import store
from app.missions.schemas import MissionStatus
from app.missions.service import _move

#: missions whose spending may still grow and that a bound can fail
_OPEN = frozenset({MissionStatus.APPROVED.value, MissionStatus.RUNNING.value})


async def task_created(tx: Tx, mission_id: int, *, rule_depth: int = 0) -> None:
    """An approved mission starts running with its first task."""
    row = await store.mission_row_tx(tx.conn, mission_id)
    if row is not None and row["status"] == MissionStatus.APPROVED.value:
        await _move(tx, row, MissionStatus.RUNNING, rule_depth=rule_depth)


async def task_ended(
    tx: Tx,
    mission_id: int,
    task_status: str,
    *,
    rule_depth: int = 0,
    bound_first: bool = False,
) -> None:
    """A failed task fails its running mission; the last succeeded step completes it.

    ``bound_first`` (the worker's end of a run): a mission that went over one of
    its bounds is left to :func:`fail_if_over_bound`, which fails it with the
    bound named and an escalation.
    """
    row = await store.mission_row_tx(tx.conn, mission_id)
    if row is None or row["status"] != MissionStatus.RUNNING.value:
        return
    if bound_first and overrun(row) is not None:
        return
    if task_status == "failed":
        await _move(
            tx,
            row,
            MissionStatus.FAILED,
            payload={"reason": "a task failed"},
            rule_depth=rule_depth,
        )
        await tx.notify(
            Category.MISSION, Severity.WARNING, f"Mission failed: {row['title']}", "a task failed"
        )
    elif task_status == "succeeded":
        steps = len(json.loads(row["steps"]))
        done = await store.steps_with_succeeded_task(tx.conn, mission_id)
        if set(range(1, steps + 1)) <= done:
            await _move(tx, row, MissionStatus.SUCCEEDED, rule_depth=rule_depth)
            await tx.notify(Category.MISSION, Severity.INFO, f"Mission succeeded: {row['title']}")


def overrun(row: Row) -> str | None:
    """The bound a mission (a :data:`store.MISSION_SELECT` row) went over: ``cost``
    or ``tokens``, or None."""
    if float(row["spent_cost_usd"]) > float(row["bound_cost_usd"]):
        return "cost"
    if int(row["spent_tokens"]) > int(row["bound_tokens"]):
        return "tokens"
    return None


async def add_spend(
    conn: aiosqlite.Connection, mission_id: int, *, tokens: int, cost_usd: float, at: str
) -> None:
    """A run's usage grows the mission's running totals.

    No version bump: spending is bookkeeping, not an edit that should make an
    operator's pending update of the mission conflict."""
    if not (tokens or cost_usd):
        return
    await conn.execute(
        "UPDATE missions SET spent_cost_usd = spent_cost_usd + ?,"
        " spent_tokens = spent_tokens + ?, updated_at = ? WHERE id = ?",
        (cost_usd, tokens, at, mission_id),
    )


async def fail_if_over_bound(tx: Tx, mission_id: int) -> str | None:
    """Fail an approved/running mission that went over a bound, and escalate.

    Returns the bound (``cost`` or ``tokens``) when it failed the mission."""
    row = await store.mission_row_tx(tx.conn, mission_id)
    if row is None or row["status"] not in _OPEN:
        return None
    which = overrun(row)
    if which is None:
        return None
    if not await store.set_status(
        tx.conn, mission_id, from_status=str(row["status"]), to_status="failed"
    ):
        return None
    reason = f"mission_bound:{which}"
    details = {
        "spent_cost_usd": round(float(row["spent_cost_usd"]), 6),
        "bound_cost_usd": float(row["bound_cost_usd"]),
        "spent_tokens": int(row["spent_tokens"]),
        "bound_tokens": int(row["bound_tokens"]),
    }
    await tx.emit(
        EventType.MISSION_FAILED,
        "mission",
        mission_id,
        {"from": row["status"], "to": "failed", "reason": reason, **details},
    )
    await tx.escalate(
        "mission_bound",
        "mission",
        mission_id,
        f"mission {mission_id} went over its {which} bound and was failed; its further"
        " runs are refused",
        details,
    )
    await tx.audit("mission.failed", f"mission:{mission_id}", {"reason": reason, **details})
    return which
