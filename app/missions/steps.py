"""Missions run their own steps: which step comes next (docs/missions.md).

An approved or running mission's steps run in order, each as a task for the
step's agent that depends on the previous step's task (so it receives that
result as hand-off). :func:`next_step` reads, from the mission's tasks, the
first step that has not succeeded and says whether it may start now: not while
a task of it is queued, running or blocked, never after one failed (the mission
fails with it), and, for a step marked ``pause_before``, only once a person has
resolved the ``mission_waiting`` escalation that asks for the go-ahead. The
worker's pass (:mod:`app.runner.mission_steps`) starts what this says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiosqlite

WAITING = "mission_waiting"
REFUSED = "mission_step_refused"
RUNNABLE = ("approved", "running")


@dataclass(frozen=True, slots=True)
class NextStep:
    mission_id: int
    mission_title: str
    #: 1-based, as tasks name it (mission_step)
    index: int
    title: str
    agent_id: int
    instructions: str
    #: the previous step's succeeded task (its result is handed over)
    depends_on: tuple[int, ...]
    pause_before: bool
    #: the step's review settings (``ReviewSpec`` fields), None for none
    review: dict[str, object] | None = None


async def runnable_missions(conn: aiosqlite.Connection, limit: int = 50) -> list[int]:
    async with conn.execute(
        "SELECT id FROM missions WHERE status IN ('approved', 'running')"
        " AND deleted_at IS NULL ORDER BY id LIMIT ?",
        (limit,),
    ) as cursor:
        return [int(r[0]) for r in await cursor.fetchall()]


async def next_step(conn: aiosqlite.Connection, mission_id: int) -> NextStep | None:
    """The step to start now, or None (running, finished, failed or not runnable)."""
    async with conn.execute(
        "SELECT title, steps, status FROM missions WHERE id = ? AND deleted_at IS NULL",
        (mission_id,),
    ) as cursor:
        row = await cursor.fetchone()
    if row is None or row[2] not in RUNNABLE:
        return None
    try:
        steps = json.loads(row[1])
    except (TypeError, ValueError):
        return None
    if not isinstance(steps, list):
        return None
    async with conn.execute(
        "SELECT id, mission_step, status FROM tasks WHERE mission_id = ? AND deleted_at IS NULL"
        " ORDER BY id",
        (mission_id,),
    ) as cursor:
        tasks = [(int(r[0]), r[1], str(r[2])) for r in await cursor.fetchall()]
    previous: int | None = None
    for index, step in enumerate(steps, start=1):
        mine = [(tid, status) for tid, number, status in tasks if number == index]
        done = [tid for tid, status in mine if status == "succeeded"]
        if done:
            previous = done[-1]
            continue
        if mine or not isinstance(step, dict):
            return None  # queued, running, blocked, or failed: nothing to start
        return NextStep(
            mission_id=mission_id,
            mission_title=str(row[0]),
            index=index,
            title=str(step.get("title", f"step {index}")),
            agent_id=int(step.get("agent_id", 0)),
            instructions=str(step.get("instructions", "")),
            depends_on=(previous,) if previous is not None else (),
            pause_before=bool(step.get("pause_before", False)),
            review=step["review"] if isinstance(step.get("review"), dict) else None,
        )
    return None


async def escalation_state(
    conn: aiosqlite.Connection, kind: str, mission_id: int, index: int
) -> str | None:
    """The status of the latest escalation of ``kind`` about this step, or None."""
    async with conn.execute(
        "SELECT status FROM escalations WHERE kind = ? AND subject_type = 'mission'"
        " AND subject_id = ? AND json_extract(details, '$.step') = ? ORDER BY id DESC LIMIT 1",
        (kind, mission_id, index),
    ) as cursor:
        row = await cursor.fetchone()
    return None if row is None else str(row[0])
