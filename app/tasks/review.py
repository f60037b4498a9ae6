"""The review gate (docs/missions.md, "Review gate").

A task (or a mission step's task) may require review by another agent and/or a
person. Its run succeeding does not make it succeed: :func:`work_succeeded`
opens a review cycle instead (the task stays ``in_progress``, with no run):

* with a reviewer agent, and while the cycle is within the task's bound, a
  **review task** for that agent, whose prompt holds the work's final result and
  the diff of its workspace as quoted, attributed data (``app/runner/prompt.py``);
  when its run ends, :func:`review_task_ended` parses its verdict fail-closed
  (:mod:`app.tasks.review_verdict`). It is no step of the work's mission (no
  ``mission_id`` of its own: it neither counts as nor completes a step), but its
  runs spend the mission's bounds like a step's: the worker's claim names the
  reviewed work's mission (``app/runner/claims.py``), so the same checks, live
  budget, ledger row and ``fail_if_over_bound`` apply;
* otherwise (a person reviews, the bound is reached, the verdict could not be
  read, the review run failed) a ``review_waiting`` escalation: "waiting for
  you", answered on the task page (:func:`human_verdict`).

An approval moves the task to ``succeeded`` through ``app/tasks/transitions.py``
(dependents queued, the mission follows); a request for changes queues a new run
of the work, whose prompt quotes the reasons as review feedback. Every verdict
is a ``review_verdicts`` row, an audit record and a ``task.review_verdict`` event.
"""

from __future__ import annotations

from typing import Any

from app.access.caller import Caller
from app.core.context import AppContext
from app.core.errors import ApiError
from app.escalations import store as escalations_store
from app.events.transaction import Tx, transaction
from app.events.types import EventType
from app.missions import lifecycle as mission_lifecycle
from app.security.credential_gate import redact
from app.security.principal import Scope
from app.tasks import review_store, store, transitions
from app.tasks.review_schemas import ReviewCycleView, ReviewsView, verdict_view
from app.tasks.review_verdict import INSTRUCTIONS, Parsed, Verdict, clip_reasons, parse_verdict
from app.tasks.schemas import TaskCreate, TaskStatus

WAITING = "review_waiting"


async def _verdict(
    tx: Tx,
    review: Any,
    parsed: Parsed,
    *,
    kind: str,
    reviewer: str,
    agent_id: int | None = None,
    conversation_id: int | None = None,
) -> None:
    task_id, cycle = int(review["task_id"]), int(review["cycle"])
    verdict_id = await review_store.insert_verdict(
        tx.conn,
        review_id=int(review["id"]),
        task_id=task_id,
        cycle=cycle,
        reviewer_kind=kind,
        reviewer=reviewer,
        agent_id=agent_id,
        verdict=parsed.verdict.value,
        reasons=parsed.reasons,
        conversation_id=conversation_id,
    )
    details = {"cycle": cycle, "verdict": parsed.verdict.value, "reviewer": reviewer}
    await tx.emit(EventType.TASK_REVIEW_VERDICT, "task", task_id, {**details, "kind": kind})
    await tx.audit(
        "task.review_verdict",
        f"task:{task_id}",
        {**details, "verdict_id": verdict_id, "reasons_chars": len(parsed.reasons)},
    )


async def _ask_human(tx: Tx, review: Any, title: str, why: str) -> None:
    """Hand the open cycle to a person: one ``review_waiting`` escalation per task."""
    task_id = int(review["task_id"])
    await review_store.move_state(tx.conn, int(review["id"]), str(review["state"]), "with_human")
    if await _open_waiting(tx, task_id) is None:
        await tx.escalate(
            WAITING,
            "task",
            task_id,
            f"task '{title[:120]}' waits for your review (cycle {review['cycle']}): {why}",
            {"task_id": task_id, "cycle": int(review["cycle"])},
        )


async def _open_waiting(tx: Tx, task_id: int) -> int | None:
    async with tx.conn.execute(
        "SELECT id FROM escalations WHERE kind = ? AND subject_type = 'task' AND subject_id = ?"
        " AND status IN ('open', 'acknowledged') ORDER BY id DESC LIMIT 1",
        (WAITING, task_id),
    ) as cursor:
        row = await cursor.fetchone()
    return None if row is None else int(row[0])


async def _close_waiting(tx: Tx, task_id: int, comment: str) -> None:
    escalation_id = await _open_waiting(tx, task_id)
    if escalation_id is not None and await escalations_store.resolve(
        tx.conn, escalation_id, tx.actor, comment[:500], None
    ):
        await tx.emit(
            EventType.ESCALATION_RESOLVED,
            "escalation",
            escalation_id,
            {"kind": WAITING, "by": tx.actor},
            min_scope=Scope.OPERATE,
        )


async def _approve(tx: Tx, task_id: int) -> dict[str, Any]:
    """The work succeeds, with the consequences of any success (its mission follows
    through ``transitions.move``).

    A mission the review run just took over a bound is failed first, with the
    bound named (the worker's own check after a step's run), so the approval
    cannot complete a mission that overspent."""
    row = await store.task_row_tx(tx.conn, task_id)
    if row is None or not transitions.allowed(TaskStatus(row["status"]), TaskStatus.SUCCEEDED):
        return {}
    if row["mission_id"] is not None:
        await mission_lifecycle.fail_if_over_bound(tx, int(row["mission_id"]))
    return await transitions.move(tx, row, TaskStatus.SUCCEEDED, reason="review approved")


async def _send_back(tx: Tx, task_id: int) -> int | None:
    """A new run of the work (it reads the reasons: ``feedback_for_rework``)."""
    row = await store.task_row_tx(tx.conn, task_id)
    if row is None or row["status"] != TaskStatus.IN_PROGRESS.value:
        return None
    return await transitions.queue_if_ready(tx, task_id, int(row["agent_id"]))


async def work_succeeded(
    tx: Tx, ctx: AppContext, task_id: int, conversation_id: int, diff: str
) -> dict[str, Any] | None:
    """The work's run succeeded: open a review cycle if the task requires one.
    None when it does not (the caller ends the task as usual)."""
    settings = await review_store.settings(tx.conn, task_id)
    if settings is None or not settings.required:
        return None
    cycle = await review_store.last_cycle(tx.conn, task_id) + 1
    to_agent = settings.reviewer_agent_id is not None and cycle <= settings.max_cycles
    review_id = await review_store.insert_review(
        tx.conn,
        task_id=task_id,
        cycle=cycle,
        work_conversation_id=conversation_id,
        diff=diff,
        state="with_agent" if to_agent else "with_human",
    )
    review = {"id": review_id, "task_id": task_id, "cycle": cycle}
    summary: dict[str, Any] = {"review": review_id, "cycle": cycle}
    await tx.emit(
        EventType.TASK_REVIEW_REQUESTED,
        "task",
        task_id,
        {"cycle": cycle, "reviewer": "agent" if to_agent else "human"},
    )
    if to_agent:
        assert settings.reviewer_agent_id is not None
        # no mission_id: not a step; its runs' spend goes to the work's mission
        # through the worker's claim (app/runner/claims.py)
        spec = TaskCreate(
            title=f"Review: {settings.title}"[:200],
            agent_id=settings.reviewer_agent_id,
            description=INSTRUCTIONS,
            project_id=settings.project_id,
            priority=settings.priority,
        )
        from app.tasks.service import create_in_transaction

        review_task_id, failures = await create_in_transaction(tx, ctx, spec)
        if review_task_id:
            await review_store.mark_review_task(tx.conn, review_task_id, task_id)
            await review_store.set_review_task(tx.conn, review_id, review_task_id)
            summary["review_task"] = review_task_id
        else:
            reasons = "; ".join(f.message for f in failures)[:500]
            failed = {**review, "state": "with_agent"}
            reviewer = await review_store.agent_name(tx.conn, settings.reviewer_agent_id)
            await _verdict(
                tx, failed, Parsed(Verdict.REVIEW_FAILED, reasons), kind="agent", reviewer=reviewer
            )
            await _ask_human(tx, failed, settings.title, f"the review could not start: {reasons}")
    else:
        why = (
            "a person reviews this task"
            if settings.reviewer_agent_id is None
            else f"{settings.max_cycles} review cycle(s) with the agent are used up"
        )
        await _ask_human(tx, {**review, "state": "with_human"}, settings.title, why)
    await tx.audit("task.review_requested", f"task:{task_id}", summary)
    return summary


async def review_task_ended(tx: Tx, review_task_id: int, *, succeeded: bool) -> None:
    """A review task ended: apply its verdict to the work it reviews."""
    review = await review_store.by_review_task(tx.conn, review_task_id)
    if review is None or review["state"] != "with_agent":
        return
    settings = await review_store.settings(tx.conn, int(review["task_id"]))
    reviewer_task = await review_store.settings(tx.conn, review_task_id)
    if settings is None or reviewer_task is None:
        return
    reviewer = await review_store.agent_name(tx.conn, reviewer_task.agent_id)
    conversation_id = None
    if succeeded:
        latest = await review_store.latest_transcript(tx.conn, review_task_id)
        if latest is None:
            parsed = Parsed(Verdict.REVIEW_FAILED, "the review run left no reply")
        else:
            conversation_id, transcript, truncated = latest
            parsed = parse_verdict(transcript, truncated=truncated)
    else:
        parsed = Parsed(Verdict.REVIEW_FAILED, "the review run failed or was refused")
    await _verdict(
        tx,
        review,
        parsed,
        kind="agent",
        reviewer=reviewer,
        agent_id=reviewer_task.agent_id,
        conversation_id=conversation_id,
    )
    await _apply(tx, review, settings, parsed)


async def _apply(
    tx: Tx, review: Any, settings: review_store.ReviewSettings, parsed: Parsed
) -> None:
    review_id, state, cycle = int(review["id"]), str(review["state"]), int(review["cycle"])
    if parsed.verdict is Verdict.APPROVE:
        if state == "with_agent" and settings.human:
            await _ask_human(tx, review, settings.title, "the reviewer agent approved it")
            return
        await review_store.move_state(tx.conn, review_id, state, "approved")
        await _approve(tx, settings.task_id)
    elif parsed.verdict is Verdict.REQUEST_CHANGES:
        if state == "with_agent" and cycle >= settings.max_cycles:
            why = f"changes were requested in all {settings.max_cycles} review cycle(s)"
            await _ask_human(tx, review, settings.title, why)
            return
        await review_store.move_state(tx.conn, review_id, state, "changes_requested")
        await _send_back(tx, settings.task_id)
    else:  # unparseable or failed: never an approval, a person decides
        await _ask_human(tx, review, settings.title, f"no usable verdict ({parsed.reasons})")


async def human_verdict(
    ctx: AppContext, task_id: int, verdict: Verdict, reasons: str, caller: Caller
) -> None:
    """A person's verdict on the task's open review (409 when none waits for one)."""
    if verdict not in (Verdict.APPROVE, Verdict.REQUEST_CHANGES):
        raise ApiError(422, "validation_failed", "verdict must be approve or request_changes")
    reasons = clip_reasons(redact(reasons).text)  # a pasted secret is not kept
    if verdict is Verdict.REQUEST_CHANGES and not reasons:
        raise ApiError(
            422,
            "validation_failed",
            "reasons: say what must change when you request changes",
            [{"loc": ["body", "reasons"], "type": "missing", "message": "reasons are required"}],
        )
    async with transaction(ctx, caller.actor, caller.client) as tx:
        settings = await review_store.settings(tx.conn, task_id)
        if settings is None:
            raise ApiError(404, "not_found", "no such task")
        review = await review_store.open_review(tx.conn, task_id)
        if review is None or review["state"] != "with_human":
            raise ApiError(409, "no_review_waiting", "this task has no review waiting for a person")
        parsed = Parsed(verdict, reasons)
        await _verdict(tx, review, parsed, kind="human", reviewer=caller.actor)
        await _close_waiting(tx, task_id, f"{verdict.value} by {caller.actor}")
        await _apply(tx, review, settings, parsed)


async def task_ended_otherwise(tx: Tx, task_id: int) -> None:
    """The work was cancelled or failed during review: close the cycle and its item,
    and cancel its review task if it has not ended."""
    review = await review_store.open_review(tx.conn, task_id)
    if review is None or not await review_store.close_open(tx.conn, task_id):
        return
    await _close_waiting(tx, task_id, "the task ended")
    if review["review_task_id"] is not None:
        row = await store.task_row_tx(tx.conn, int(review["review_task_id"]))
        if row is not None and transitions.allowed(TaskStatus(row["status"]), TaskStatus.CANCELLED):
            await transitions.move(
                tx, row, TaskStatus.CANCELLED, reason=f"task {task_id} under review ended"
            )


async def task_ended(tx: Tx, task_id: int, status: TaskStatus) -> None:
    """Any task ended (the worker's end of a run, a cancel): a review task hands
    its verdict to the work (a failed or cancelled one hands it to a person); a
    work task that failed or was cancelled during review closes its cycle."""
    if status is TaskStatus.SUCCEEDED:
        await review_task_ended(tx, task_id, succeeded=True)
    elif status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        await review_task_ended(tx, task_id, succeeded=False)
        await task_ended_otherwise(tx, task_id)


async def reviews_view(ctx: AppContext, task_id: int) -> ReviewsView:
    """The task's review settings, cycles and every verdict (404: no such task)."""
    async with ctx.db.read() as conn:
        settings = await review_store.settings(conn, task_id)
    if settings is None:
        raise ApiError(404, "not_found", "no such task")
    verdicts = [verdict_view(r) for r in await review_store.verdicts_of(ctx.db, task_id)]
    cycles = [
        ReviewCycleView(
            cycle=row["cycle"],
            state=row["state"],
            work_conversation_id=row["work_conversation_id"],
            review_task_id=row["review_task_id"],
            diff=row["diff"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            verdicts=[v for v in verdicts if v.cycle == row["cycle"]],
        )
        for row in await review_store.reviews_of(ctx.db, task_id)
    ]
    return ReviewsView(
        task_id=task_id,
        reviews_task_id=await review_store.reviewed_work(ctx.db, task_id),
        reviewer_agent_id=settings.reviewer_agent_id,
        human=settings.human,
        max_cycles=settings.max_cycles,
        waiting_for_human=any(c.state == "with_human" for c in cycles),
        cycles=cycles,
    )
