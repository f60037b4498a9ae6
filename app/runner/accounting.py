"""Usage accounting, agent quotas (F15) and mission bounds (F17), enforced by the worker.

* Before a run (inside the claim transaction): the agent's usage today (UTC day:
  tokens and cost from ``usage_ledger``, runs = its conversations started today)
  against its daily quotas, and the mission's spending against its bounds. A quota
  or bound already reached refuses the run: ``quota_exceeded:<tokens|cost|runs>`` /
  ``mission_bound:<cost|tokens>``, and a mission that is not approved/running
  refuses it with ``mission_closed:<status>``.
* While a run goes on: the same totals are read at every lease renewal; when other
  runs pushed the agent or the mission over (or the mission was failed or
  cancelled), the run is stopped.
* After a run: one ``usage_ledger`` row (day = UTC date) and the mission's
  ``spent_*`` grow by the reported usage; a mission now over a bound is failed and
  escalated, which refuses its further runs. Both mission writes are the missions
  domain's (:mod:`app.missions.lifecycle`: ``add_spend``, ``fail_if_over_bound``);
  this module only reads and decides.

"Reached" is ``spent >= bound`` (no budget left: do not start); a mission is
failed after a run only when it went *over* (``spent > bound``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiosqlite

from app.core.clock import iso
from app.core.database import Row
from app.missions import lifecycle as mission_lifecycle

#: missions whose tasks may run
RUNNABLE_MISSION_STATUSES = frozenset({"approved", "running"})


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a run may not start (or must stop), and the escalation it opens."""

    reason: str
    #: escalation kind; None when no human needs to be told again
    escalation: str | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AgentUsage:
    tokens: int
    cost_usd: float
    runs: int


@dataclass(frozen=True, slots=True)
class AgentQuota:
    tokens_per_day: int
    cost_usd_per_day: float
    runs_per_day: int


@dataclass(frozen=True, slots=True)
class MissionState:
    id: int
    status: str
    deleted: bool
    bound_cost_usd: float
    bound_tokens: int
    bound_step_minutes: int
    spent_cost_usd: float
    spent_tokens: int


def utc_day(moment: datetime) -> str:
    return moment.date().isoformat()


def utc_midnight(moment: datetime) -> str:
    return iso(moment.replace(hour=0, minute=0, second=0, microsecond=0))


async def _one(conn: aiosqlite.Connection, sql: str, params: tuple[Any, ...]) -> Row | None:
    async with conn.execute(sql, params) as cursor:
        row: Row | None = await cursor.fetchone()
        return row


# --------------------------------------------------------------------------- agents


async def agent_usage_today(conn: aiosqlite.Connection, agent_id: int, now: datetime) -> AgentUsage:
    ledger = await _one(
        conn,
        "SELECT coalesce(sum(tokens), 0), coalesce(sum(cost_usd), 0) FROM usage_ledger"
        " WHERE agent_id = ? AND day = ?",
        (agent_id, utc_day(now)),
    )
    runs = await _one(
        conn,
        "SELECT count(*) FROM conversations WHERE agent_id = ? AND started_at >= ?",
        (agent_id, utc_midnight(now)),
    )
    return AgentUsage(
        tokens=int(ledger[0]) if ledger else 0,
        cost_usd=float(ledger[1]) if ledger else 0.0,
        runs=int(runs[0]) if runs else 0,
    )


def quota_refusal(
    quota: AgentQuota, usage: AgentUsage, *, count_runs: bool = True
) -> Refusal | None:
    """The first daily quota the agent has reached, or None."""
    checks: list[tuple[str, float, float]] = [
        ("tokens", usage.tokens, quota.tokens_per_day),
        ("cost", usage.cost_usd, quota.cost_usd_per_day),
    ]
    if count_runs:
        checks.append(("runs", usage.runs, quota.runs_per_day))
    for which, used, limit in checks:
        if used >= limit:
            return Refusal(
                f"quota_exceeded:{which}",
                "quota_exceeded",
                {"quota": which, "used_today": used, "per_day": limit},
            )
    return None


# --------------------------------------------------------------------------- missions


async def mission_state(conn: aiosqlite.Connection, mission_id: int) -> MissionState | None:
    """A mission with its spending: the larger of its running totals and its ledger
    rows (the same rule as the missions API, so neither can undercount)."""
    row = await _one(
        conn,
        "SELECT m.id, m.status, m.deleted_at, m.bound_cost_usd, m.bound_tokens,"
        " m.bound_step_minutes,"
        " max(m.spent_cost_usd, coalesce((SELECT sum(u.cost_usd) FROM usage_ledger u"
        "  WHERE u.mission_id = m.id), 0)),"
        " max(m.spent_tokens, coalesce((SELECT sum(u.tokens) FROM usage_ledger u"
        "  WHERE u.mission_id = m.id), 0))"
        " FROM missions m WHERE m.id = ?",
        (mission_id,),
    )
    if row is None:
        return None
    return MissionState(
        id=int(row[0]),
        status=str(row[1]),
        deleted=row[2] is not None,
        bound_cost_usd=float(row[3]),
        bound_tokens=int(row[4]),
        bound_step_minutes=int(row[5]),
        spent_cost_usd=float(row[6]),
        spent_tokens=int(row[7]),
    )


def mission_refusal(mission: MissionState | None, mission_id: int) -> Refusal | None:
    """Why a task of this mission may not run (now), or None."""
    if mission is None or mission.deleted:
        return Refusal("mission_closed:deleted", None, {"mission_id": mission_id})
    if mission.status not in RUNNABLE_MISSION_STATUSES:
        # failed/cancelled: a human was told already (the failure escalated)
        return Refusal(f"mission_closed:{mission.status}", None, {"mission_id": mission_id})
    details = {
        "mission_id": mission_id,
        "spent_cost_usd": mission.spent_cost_usd,
        "bound_cost_usd": mission.bound_cost_usd,
        "spent_tokens": mission.spent_tokens,
        "bound_tokens": mission.bound_tokens,
    }
    if mission.spent_cost_usd >= mission.bound_cost_usd:
        return Refusal("mission_bound:cost", "mission_bound", details)
    if mission.spent_tokens >= mission.bound_tokens:
        return Refusal("mission_bound:tokens", "mission_bound", details)
    return None


# --------------------------------------------------------------------------- usage


async def record_usage(
    conn: aiosqlite.Connection,
    *,
    agent_id: int,
    mission_id: int | None,
    conversation_id: int,
    tokens: int,
    cost_usd: float,
    now: datetime,
) -> None:
    """One ledger row per run (day = UTC date); the mission's running totals grow
    (through the missions domain)."""
    stamp = iso(now)
    await conn.execute(
        "INSERT INTO usage_ledger (agent_id, mission_id, conversation_id, day, tokens, cost_usd,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (agent_id, mission_id, conversation_id, utc_day(now), tokens, cost_usd, stamp),
    )
    if mission_id is not None:
        await mission_lifecycle.add_spend(
            conn, mission_id, tokens=tokens, cost_usd=cost_usd, at=stamp
        )
