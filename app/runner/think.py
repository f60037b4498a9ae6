"""The think cycle: an agent with ``think_interval_minutes`` gets a periodic,
low-priority task to review its queue and memory.

It is an ordinary task created through the task service, so every pre-flight
check applies (quota, circuit, credential gate) and the prompt is built and
gated like any other. At most one think task per agent is open at a time, and
the idempotency key names the interval slot, so two workers never create two.
"""

from __future__ import annotations

import logging
from datetime import datetime

from app.core.clock import iso, utcnow
from app.core.context import AppContext
from app.core.errors import ApiError

log = logging.getLogger("mission_control.think")

ACTOR = "system:think"
TITLE = "Think cycle"
MAX_QUEUE_LINES = 20


async def _queue_summary(ctx: AppContext, agent_id: int) -> str:
    rows = await ctx.db.fetch_all(
        "SELECT id, title, priority FROM tasks WHERE agent_id = ? AND deleted_at IS NULL"
        " AND status IN ('queued', 'blocked') AND title != ? ORDER BY id LIMIT ?",
        (agent_id, TITLE, MAX_QUEUE_LINES),
    )
    lines = [f"- #{r['id']} [{r['priority']}] {r['title']}" for r in rows]
    queue = "\n".join(lines) if lines else "(no waiting tasks)"
    return (
        "Review your queue and your memory. Say what should happen next and why;"
        f" do not start work here.\n\nWaiting tasks:\n{queue}"
    )


async def schedule_think_cycles(ctx: AppContext, now: datetime | None = None) -> list[int]:
    """Create the think tasks that are due; returns their ids."""
    from app.tasks.schemas import TaskCreate
    from app.tasks.service import create_task

    moment = now or utcnow()
    agents = await ctx.db.fetch_all(
        "SELECT id, think_interval_minutes FROM agents WHERE status = 'active'"
        " AND deleted_at IS NULL AND think_interval_minutes IS NOT NULL"
    )
    created: list[int] = []
    for agent in agents:
        agent_id, minutes = int(agent["id"]), int(agent["think_interval_minutes"])
        open_row = await ctx.db.fetch_one(
            "SELECT count(*) FROM tasks WHERE agent_id = ? AND created_by = ?"
            " AND status IN ('queued', 'in_progress') AND deleted_at IS NULL",
            (agent_id, ACTOR),
        )
        if open_row is not None and open_row[0]:
            continue
        last = await ctx.db.fetch_one(
            "SELECT max(created_at) FROM tasks WHERE agent_id = ? AND created_by = ?",
            (agent_id, ACTOR),
        )
        slot = int(moment.timestamp() // (minutes * 60))
        if last is not None and last[0] is not None:
            last_slot = int(
                datetime.fromisoformat(str(last[0]).replace("Z", "+00:00")).timestamp()
                // (minutes * 60)
            )
            if last_slot >= slot:
                continue
        spec = TaskCreate(
            title=TITLE,
            description=await _queue_summary(ctx, agent_id),
            agent_id=agent_id,
            priority="low",
            idempotency_key=f"think:{agent_id}:{slot}",
        )
        try:
            view = await create_task(ctx, spec, actor=ACTOR, client="worker")
        except ApiError as exc:  # refused by pre-flight: an escalation is already open
            log.info("think cycle refused", extra={"agent_id": agent_id, "code": exc.code})
            continue
        created.append(view.id)
    if created:
        log.info("think cycles queued", extra={"tasks": created, "at": iso(moment)})
    return created
