"""The worker's pass that starts missions' steps (app/missions/steps.py decides).

Each start is one transaction: the step's task (through pre-flight, like any
task: the mission's approval and bounds, the agent, the gate) or, for a step
that waits for a person, the ``mission_waiting`` escalation (a notification:
"waiting for you"), opened once. A step that pre-flight refuses is escalated
once and left for a person (tried again when they resolve the escalation); the
mission is not failed behind their back. A mission with nothing to start costs
one read, no write.
"""

from __future__ import annotations

import logging

from app.core.context import AppContext
from app.events.transaction import transaction
from app.missions import steps
from app.tasks import service as tasks_service
from app.tasks.schemas import ReviewSpec, TaskCreate

log = logging.getLogger("mission_control.runner.missions")

CLIENT = "worker"


async def advance_missions(ctx: AppContext, actor: str) -> int:
    """Start every mission step that may start now; returns how many started."""
    async with ctx.db.read() as conn:
        mission_ids = await steps.runnable_missions(conn)
    started = 0
    for mission_id in mission_ids:
        try:
            if await _anything_to_do(ctx, mission_id) and await _advance(ctx, actor, mission_id):
                started += 1
        except Exception:
            log.exception("mission step could not start", extra={"mission_id": mission_id})
    return started


async def _anything_to_do(ctx: AppContext, mission_id: int) -> bool:
    """A look on a read connection first: a running mission with nothing to start
    costs no write lock and no disk write (an idle worker, every 5 s)."""
    async with ctx.db.read() as conn:
        plan = await steps.next_step(conn, mission_id)
        if plan is None:
            return False
        refused = await steps.escalation_state(conn, steps.REFUSED, mission_id, plan.index)
        if refused in ("open", "acknowledged"):
            return False  # tried again once a person has resolved the refusal
        if plan.pause_before:
            state = await steps.escalation_state(conn, steps.WAITING, mission_id, plan.index)
            return state in (None, "resolved")
    return True


async def _advance(ctx: AppContext, actor: str, mission_id: int) -> bool:
    async with transaction(ctx, actor, CLIENT) as tx:
        plan = await steps.next_step(tx.conn, mission_id)
        if plan is None:
            return False
        if plan.pause_before:
            state = await steps.escalation_state(tx.conn, steps.WAITING, mission_id, plan.index)
            if state is None:
                await tx.escalate(
                    steps.WAITING,
                    "mission",
                    mission_id,
                    f"mission '{plan.mission_title}' waits for you before step {plan.index}"
                    f" ({plan.title}): resolve this escalation to start it",
                    {"step": plan.index, "title": plan.title},
                )
            if state != "resolved":
                return False
        spec = TaskCreate(
            title=plan.title,
            agent_id=plan.agent_id,
            description=plan.instructions,
            mission_id=mission_id,
            mission_step=plan.index,
            depends_on=list(plan.depends_on),
            review=ReviewSpec.model_validate(plan.review) if plan.review else None,
        )
        # a mission runs only once a person approved it (app/approvals/gate.py): its
        # steps are that person's decision, shell or not (docs/security-model.md)
        task_id, failures = await tasks_service.create_in_transaction(
            tx, ctx, spec, decided_by_person=True
        )
        if task_id:
            await tx.audit(
                "mission.step_started",
                f"mission:{mission_id}",
                {"step": plan.index, "task_id": task_id},
            )
            return True
        if await steps.escalation_state(tx.conn, steps.REFUSED, mission_id, plan.index) is None:
            await tx.escalate(
                steps.REFUSED,
                "mission",
                mission_id,
                f"step {plan.index} of mission '{plan.mission_title}' could not start: "
                + "; ".join(f.message for f in failures)[:400],
                {"step": plan.index, "failures": [f.as_dict() for f in failures]},
            )
        return False
