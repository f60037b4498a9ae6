"""The rules of schedules: recurring tasks from a cron expression in a time zone.

The whole design is in ``docs/schedules.md``; the controls, each with its test:

* **Exactly once per due time.** A firing row and the task it makes (or the
  record of its refusal) are written in one transaction together with the
  schedule's cursor (``handled_through``); a crash before the commit leaves
  neither, a crash after it leaves both. The unique index
  ``schedule_firings_once (schedule_id, due_at)`` refuses a second firing of a
  due time whatever happens (two workers, a re-run pass).
* **Missed-run policy.** Due times more than :data:`GRACE` in the past when a
  pass sees them were missed (the worker was down, the clock was not
  synchronised). Default ``run_once``: one task for the latest of them, the rest
  counted on that firing; ``skip``: no task, the firing is recorded ``skipped``.
  When a due time within the grace is waiting as well, it fires and the missed
  ones are only counted.
* **No firing while the clock is not synchronised** (``app/care/clock.py``: a
  Pi has no real-time clock): the pass does nothing, the cursor does not move;
  once the clock is right the missed-run policy handles what passed.
* **Pre-flight, quotas and bounds**: every firing creates its task through
  ``app.tasks.service.create_in_transaction`` (the same checks as any task).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cronsim import CronSim, CronSimError

from app.access.caller import Caller
from app.care.clock import clock_state
from app.core.clock import iso, parse_iso, utcnow
from app.core.context import AppContext
from app.core.database import Row
from app.core.errors import ApiError
from app.core.pagination import PageParams
from app.events.transaction import Tx, transaction
from app.events.types import EventType
from app.schedules import store
from app.schedules.schemas import (
    NEXT_DUE_COUNT,
    FiringKind,
    FiringOutcome,
    FiringView,
    MissedPolicy,
    ScheduleCreate,
    ScheduleStatus,
    ScheduleView,
)
from app.tasks import preflight
from app.tasks import service as tasks
from app.tasks.preflight import Failure
from app.tasks.schemas import TaskCreate

log = logging.getLogger("mission_control.schedules")

#: a due time older than this when a pass sees it was missed (the pass runs every
#: minute in the worker, so an on-time firing is well inside it)
GRACE = timedelta(minutes=5)
#: missed due times counted one by one at most (beyond: "at least this many")
MISSED_COUNT_CAP = 10_000
#: firings one schedule may make in one pass (due times inside the grace)
MAX_FIRINGS_PER_PASS = 10
#: a schedule whose first due time is further away than this is refused
FIRST_DUE_HORIZON = timedelta(days=366 * 5)
#: pre-flight checks that may pass later (quota, circuit, a paused agent): they do
#: not stop a schedule from being created, only a firing from making its task
TRANSIENT_CHECKS = frozenset({"agent_within_quota", "runner_circuit_closed", "agent_active"})
CLIENT = "worker"


def actor_of(schedule_id: int) -> str:
    return f"schedule:{schedule_id}"


def not_found() -> ApiError:
    return ApiError(404, "not_found", "no such schedule")


# --- cron and time zones -----------------------------------------------------------------


@functools.cache
def _zone_names() -> frozenset[str]:
    # "localtime" is whatever the host is set to, "Factory" is no place: neither is a zone
    return (frozenset(zoneinfo.available_timezones()) - {"localtime", "Factory"}) | {"UTC"}


def zone_of(name: str) -> zoneinfo.ZoneInfo | None:
    """The IANA zone of that name, or None (never a path, never an error)."""
    if name not in _zone_names():
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


def cron_problem(expr: str) -> str | None:
    """Why the expression cannot be used (plain words), or None."""
    if len(expr.split()) != 5:
        return (
            "a cron expression has five fields: minute hour day-of-month month day-of-week,"
            " e.g. '0 7 * * MON-FRI' (every weekday at 07:00)"
        )
    try:
        CronSim(expr, datetime(2030, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        return f"the cron expression is not valid ({exc}): e.g. '0 7 * * MON-FRI'"
    return None


def explain(expr: str) -> str:
    try:
        return CronSim(expr, datetime(2030, 1, 1, tzinfo=UTC)).explain()
    except (CronSimError, Exception):  # explain() covers less than the parser
        return expr


def next_after(expr: str, zone: zoneinfo.ZoneInfo, after: datetime) -> datetime | None:
    """The first due time strictly after ``after`` (UTC), or None."""
    try:
        moment = next(CronSim(expr, after.astimezone(zone)))
    except (CronSimError, StopIteration, OverflowError, ValueError):
        return None
    return moment.astimezone(UTC)


def last_at_or_before(expr: str, zone: zoneinfo.ZoneInfo, moment: datetime) -> datetime | None:
    """The latest due time at or before ``moment`` (UTC), or None."""
    start = (moment + timedelta(seconds=1)).replace(microsecond=0)
    try:
        found = next(CronSim(expr, start.astimezone(zone), reverse=True))
    except (CronSimError, StopIteration, OverflowError, ValueError):
        return None
    return found.astimezone(UTC)


def due_times(
    expr: str, zone: zoneinfo.ZoneInfo, after: datetime, count: int, until: datetime | None
) -> list[datetime]:
    out: list[datetime] = []
    cursor = after
    while len(out) < count:
        moment = next_after(expr, zone, cursor)
        if moment is None or (until is not None and moment > until):
            break
        out.append(moment)
        cursor = moment
    return out


def count_due(expr: str, zone: zoneinfo.ZoneInfo, after: datetime, upto: datetime, cap: int) -> int:
    """How many due times in (after, upto], at most ``cap``."""
    return len(due_times(expr, zone, after, cap, upto))


# --- views -------------------------------------------------------------------------------


def _zone(row: Row) -> zoneinfo.ZoneInfo:
    return zone_of(str(row["timezone"])) or zoneinfo.ZoneInfo("UTC")


def _end(row: Row) -> datetime | None:
    return parse_iso(str(row["ends_at"])) if row["ends_at"] else None


def next_due(row: Row, now: datetime, count: int = NEXT_DUE_COUNT) -> list[datetime]:
    if row["status"] != ScheduleStatus.ACTIVE.value:
        return []
    left = count
    if row["max_runs"] is not None:
        left = min(left, int(row["max_runs"]) - int(row["runs"]))
    if left <= 0:
        return []
    after = max(parse_iso(str(row["handled_through"])), now)
    return due_times(str(row["cron"]), _zone(row), after, left, _end(row))


def schedule_view(row: Row, now: datetime | None = None) -> ScheduleView:
    values: dict[str, Any] = dict(zip(row.keys(), row, strict=True))
    values["required_tools"] = json.loads(values["required_tools"])
    values["needs_shell"] = bool(values["needs_shell"])
    values["cron_explained"] = explain(str(row["cron"]))
    values["next_due"] = [iso(m) for m in next_due(row, now or utcnow())]
    values.pop("deleted_at", None)
    return ScheduleView.model_validate(values)


def firing_view(row: Row) -> FiringView:
    return FiringView.model_validate(dict(zip(row.keys(), row, strict=True)))


async def get_schedule(ctx: AppContext, schedule_id: int) -> ScheduleView:
    row = await store.schedule_row(ctx.db, schedule_id)
    if row is None:
        raise not_found()
    return schedule_view(row)


async def list_schedules(ctx: AppContext, page: PageParams) -> tuple[list[ScheduleView], int]:
    rows, total = await store.list_schedules(ctx.db, page)
    now = utcnow()
    return [schedule_view(r, now) for r in rows], total


async def list_firings(
    ctx: AppContext, schedule_id: int, page: PageParams
) -> tuple[list[FiringView], int]:
    if await store.schedule_row(ctx.db, schedule_id) is None:
        raise not_found()
    rows, total = await store.list_firings(ctx.db, schedule_id, page)
    return [firing_view(r) for r in rows], total


# --- creation ----------------------------------------------------------------------------


#: the moments a start or an end may name (beyond them: a typo, or an overflow)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_YEARS = 100


def _moment(text: str | None, name: str, failures: list[Failure], now: datetime) -> datetime | None:
    if text is None:
        return None
    out_of_range = Failure(
        f"{name}_valid",
        name,
        f"{name} must be between the year 2000 and {LATEST_YEARS} years from now",
    )
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise ValueError("no offset")
    except ValueError:
        failures.append(
            Failure(
                f"{name}_valid",
                name,
                f"{name} must be an ISO-8601 date-time with a timezone,"
                " e.g. 2030-01-31T07:00+01:00",
            )
        )
        return None
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        failures.append(out_of_range)
        return None
    if not EARLIEST <= moment <= now + timedelta(days=365 * LATEST_YEARS):
        failures.append(out_of_range)
        return None
    return moment


def task_spec(values: dict[str, Any] | Row) -> TaskCreate:
    """The task a firing makes (the schedule's template)."""
    tools = values["required_tools"]
    return TaskCreate(
        title=str(values["title"]),
        description=str(values["description"]),
        agent_id=int(values["agent_id"]),
        project_id=values["project_id"],
        priority=str(values["priority"]),
        required_tools=json.loads(tools) if isinstance(tools, str) else list(tools),
        needs_shell=bool(values["needs_shell"]),
    )


def _schedule_failures(spec: ScheduleCreate, now: datetime) -> tuple[dict[str, Any], list[Failure]]:
    failures: list[Failure] = []
    if not spec.name:
        failures.append(Failure("name_valid", "name", "name must not be empty: give it a name"))
    problem = cron_problem(spec.cron)
    if problem is not None:
        failures.append(Failure("cron_valid", "cron", problem))
    zone = zone_of(spec.timezone)
    if zone is None:
        failures.append(
            Failure(
                "timezone_valid",
                "timezone",
                "unknown time zone: use an IANA name such as Europe/Paris, America/New_York or UTC",
            )
        )
    starts = _moment(spec.starts_at, "starts_at", failures, now) or now
    ends = _moment(spec.ends_at, "ends_at", failures, now)
    if ends is not None and ends <= max(starts, now):
        failures.append(
            Failure("ends_at_valid", "ends_at", "ends_at must be later than the start and than now")
        )
    failures += preflight.credential_failures({"name": spec.name})
    # the first due time: there must be one, within the horizon and before the end
    after = max(starts - timedelta(microseconds=1), now)
    if problem is None and zone is not None and not failures:
        first = next_after(spec.cron, zone, after)
        if first is None or first > now + FIRST_DUE_HORIZON:
            failures.append(
                Failure("cron_valid", "cron", "this expression never comes due: check the day")
            )
        elif ends is not None and first > ends:
            failures.append(
                Failure(
                    "ends_at_valid",
                    "ends_at",
                    f"the first due time ({iso(first)}) is after ends_at: move the end later",
                )
            )
    values = {
        "name": spec.name,
        "cron": " ".join(spec.cron.split()),
        "timezone": spec.timezone,
        "starts_at": iso(starts),
        "ends_at": iso(ends) if ends is not None else None,
        "max_runs": spec.max_runs,
        "missed_policy": spec.missed_policy.value,
        "title": spec.title.strip(),
        "description": spec.description,
        "agent_id": spec.agent_id,
        "project_id": spec.project_id,
        "priority": spec.priority.value,
        "required_tools": sorted(t.value for t in spec.required_tools),
        "needs_shell": spec.needs_shell or any(t.value == "shell" for t in spec.required_tools),
        "handled_through": iso(after),
    }
    return values, failures


def validation_error(failures: list[Failure]) -> ApiError:
    return ApiError(
        422,
        "validation_failed",
        f"the schedule failed {len({f.check for f in failures})} check(s)",
        [f.as_dict() for f in failures],
    )


async def create_schedule(ctx: AppContext, spec: ScheduleCreate, caller: Caller) -> ScheduleView:
    """Checks the schedule and, as a dry run, the task it would make (pre-flight,
    less the checks that may pass later); 422 lists every failure by field."""
    now = utcnow()
    values, failures = _schedule_failures(spec, now)
    values["created_by"] = caller.actor
    schedule_id = 0
    async with transaction(ctx, caller.actor, caller.client) as tx:
        task = task_spec(values)
        facts = await preflight.gather(tx.conn, task, ctx.settings, now)
        failures += [
            f for f in preflight.run_checks(task, facts) if f.check not in TRANSIENT_CHECKS
        ]
        if not failures:
            schedule_id = await store.insert_schedule(tx.conn, values)
            summary = {
                "cron": values["cron"],
                "timezone": values["timezone"],
                "agent_id": values["agent_id"],
                "missed_policy": values["missed_policy"],
                "max_runs": values["max_runs"],
                "ends_at": values["ends_at"],
            }
            await tx.audit("schedule.create", f"schedule:{schedule_id}", summary)
            await tx.emit(
                EventType.SCHEDULE_CREATED,
                "schedule",
                schedule_id,
                {"name": values["name"][:200], **summary},
            )
    if failures:
        async with transaction(ctx, caller.actor, caller.client) as tx:
            await tx.audit(
                "schedule.create",
                "schedule",
                {"checks": sorted({f.check for f in failures})},
                outcome="refused",
            )
        raise validation_error(failures)
    return await get_schedule(ctx, schedule_id)


# --- pause, resume, delete ------------------------------------------------------------------


async def _change(
    ctx: AppContext,
    schedule_id: int,
    caller: Caller,
    *,
    action: str,
    allowed_from: frozenset[ScheduleStatus],
    status: ScheduleStatus,
) -> ScheduleView:
    async with transaction(ctx, caller.actor, caller.client) as tx:
        row = await store.schedule_row_tx(tx.conn, schedule_id)
        if row is None:
            raise not_found()
        current = ScheduleStatus(row["status"])
        if current not in allowed_from:
            raise ApiError(
                409,
                "invalid_transition",
                f"a {current.value} schedule cannot be {action}d",
                {"from": current.value, "to": status.value},
            )
        # resuming does not fire what came due while paused: the cursor moves to now
        through = None
        if status is ScheduleStatus.ACTIVE:
            through = iso(max(parse_iso(str(row["handled_through"])), utcnow()))
        await store.set_state(tx.conn, schedule_id, status=status.value, handled_through=through)
        summary = {"from": current.value, "to": status.value}
        await tx.audit(f"schedule.{action}", f"schedule:{schedule_id}", summary)
        await tx.emit(EventType.SCHEDULE_UPDATED, "schedule", schedule_id, summary)
    return await get_schedule(ctx, schedule_id)


async def pause(ctx: AppContext, schedule_id: int, caller: Caller) -> ScheduleView:
    return await _change(
        ctx,
        schedule_id,
        caller,
        action="pause",
        allowed_from=frozenset({ScheduleStatus.ACTIVE}),
        status=ScheduleStatus.PAUSED,
    )


async def resume(ctx: AppContext, schedule_id: int, caller: Caller) -> ScheduleView:
    return await _change(
        ctx,
        schedule_id,
        caller,
        action="resume",
        allowed_from=frozenset({ScheduleStatus.PAUSED}),
        status=ScheduleStatus.ACTIVE,
    )


async def delete_schedule(ctx: AppContext, schedule_id: int, caller: Caller) -> None:
    """Soft delete; its history and the tasks it made stay."""
    async with transaction(ctx, caller.actor, caller.client) as tx:
        if not await store.soft_delete(tx.conn, schedule_id):
            raise not_found()
        await tx.audit("schedule.delete", f"schedule:{schedule_id}")
        await tx.emit(EventType.SCHEDULE_UPDATED, "schedule", schedule_id, {"deleted": True})


# --- firing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What one step of a pass does for one schedule."""

    due_at: datetime | None = None
    kind: FiringKind = FiringKind.DUE
    make_task: bool = True
    missed: int = 0
    end_reason: str | None = None


def plan(row: Row, now: datetime) -> Plan | None:
    """The next step for an active schedule at ``now``, or None (nothing is due)."""
    if row["max_runs"] is not None and int(row["runs"]) >= int(row["max_runs"]):
        return Plan(end_reason="max_runs reached")
    expr, zone, ends = str(row["cron"]), _zone(row), _end(row)
    after = parse_iso(str(row["handled_through"]))
    first = next_after(expr, zone, after)
    if first is None or (ends is not None and first > ends):
        return Plan(end_reason="no due time before ends_at" if ends else "never due again")
    if first > now:
        return None
    limit = min(now, ends) if ends is not None else now
    grace_start = now - GRACE
    if first >= grace_start:
        return Plan(due_at=first)
    # ``first`` was missed: the policy decides (docs/schedules.md, "Missed runs")
    latest_missed = last_at_or_before(expr, zone, min(limit, grace_start)) or first
    missed = count_due(expr, zone, after, latest_missed, MISSED_COUNT_CAP)
    on_time = next_after(expr, zone, latest_missed)
    if on_time is not None and on_time <= limit:
        return Plan(due_at=on_time, missed=missed)
    policy = MissedPolicy(row["missed_policy"])
    return Plan(
        due_at=latest_missed,
        kind=FiringKind.CAUGHT_UP,
        make_task=policy is MissedPolicy.RUN_ONCE,
        missed=max(missed - 1, 0),
    )


async def _refusal(tx: Tx, schedule_id: int, failures: list[Failure], *, escalate: bool) -> str:
    """The refused task's audit, event and (one open at a time) escalation, in the
    firing's own transaction. Titles and descriptions are not recorded."""
    codes = sorted({f.check for f in failures})
    row = await store.schedule_row_tx(tx.conn, schedule_id)
    agent_id = int(row["agent_id"]) if row is not None else None
    summary = {"checks": codes, "agent_id": agent_id, "schedule_id": schedule_id}
    await tx.audit("task.create", "task", summary, outcome="refused")
    await tx.emit(EventType.TASK_REFUSED, "task", None, summary)
    if escalate and not await store.open_escalation_tx(tx.conn, schedule_id):
        await tx.escalate(
            "preflight_refused",
            "schedule",
            schedule_id,
            f"schedule {schedule_id} could not make its task: " + ", ".join(codes),
            {**summary, "failures": [f.as_dict() for f in failures]},
        )
    return ", ".join(codes)


async def _fire(
    tx: Tx,
    ctx: AppContext,
    row: Row,
    *,
    due_at: datetime,
    kind: FiringKind,
    make_task: bool,
    missed: int,
    escalate: bool = True,
) -> tuple[int, int, list[Failure]]:
    """Make the task (through pre-flight) and record the firing; returns
    (firing id, task id or 0, failures)."""
    schedule_id = int(row["id"])
    task_id, detail = 0, ""
    failures: list[Failure] = []
    if make_task:
        task_id, failures = await tasks.create_in_transaction(tx, ctx, task_spec(row))
        if failures:
            detail = await _refusal(tx, schedule_id, failures, escalate=escalate)
    else:
        detail = f"missed-run policy skip: {missed + 1} due time(s) passed while nothing could fire"
    outcome = (
        FiringOutcome.CREATED
        if task_id
        else (FiringOutcome.REFUSED if make_task else FiringOutcome.SKIPPED)
    )
    firing_id = await store.insert_firing(
        tx.conn,
        {
            "schedule_id": schedule_id,
            "due_at": iso(due_at),
            "kind": kind.value,
            "outcome": outcome.value,
            "task_id": task_id or None,
            "missed": missed,
            "detail": detail,
            "actor": tx.actor,
        },
    )
    payload = {
        "firing_id": firing_id,
        "due_at": iso(due_at),
        "kind": kind.value,
        "outcome": outcome.value,
        "task_id": task_id or None,
        "missed": missed,
    }
    await tx.audit("schedule.fire", f"schedule:{schedule_id}", payload)
    await tx.emit(EventType.SCHEDULE_FIRED, "schedule", schedule_id, payload)
    return firing_id, task_id, failures


async def _step(ctx: AppContext, schedule_id: int, now: datetime) -> bool:
    """One transaction: the next firing (or ending) of one schedule; False when
    nothing more is due."""
    async with transaction(ctx, actor_of(schedule_id), CLIENT) as tx:
        row = await store.schedule_row_tx(tx.conn, schedule_id)
        if row is None or row["status"] != ScheduleStatus.ACTIVE.value:
            return False
        step = plan(row, now)
        if step is None:
            return False
        if step.end_reason is not None or step.due_at is None:
            reason = step.end_reason or "ended"
            await store.set_state(
                tx.conn, schedule_id, status=ScheduleStatus.ENDED.value, ended_reason=reason
            )
            await tx.audit("schedule.end", f"schedule:{schedule_id}", {"reason": reason})
            await tx.emit(
                EventType.SCHEDULE_UPDATED,
                "schedule",
                schedule_id,
                {"from": "active", "to": "ended", "reason": reason},
            )
            return False
        _, task_id, _ = await _fire(
            tx,
            ctx,
            row,
            due_at=step.due_at,
            kind=step.kind,
            make_task=step.make_task,
            missed=step.missed,
        )
        runs = int(row["runs"]) + (1 if task_id else 0)
        await store.set_state(tx.conn, schedule_id, handled_through=iso(step.due_at), runs=runs)
    return True


_clock_held = False


async def fire_due_schedules(ctx: AppContext, now: datetime | None = None) -> int:
    """One pass over the active schedules (the worker runs it every minute);
    returns how many firings it recorded. Nothing fires while the clock is not
    known to be synchronised."""
    global _clock_held
    clock = await asyncio.to_thread(clock_state, ctx.settings)
    if not clock.trusted:
        if not _clock_held:
            log.warning(
                "schedules held: the clock is not known to be synchronised",
                extra={"clock_source": clock.source, "clock_detail": clock.detail},
            )
        _clock_held = True
        return 0
    _clock_held = False
    moment = now or utcnow()
    fired = 0
    for schedule_id in await store.active_ids(ctx.db):
        try:
            for _ in range(MAX_FIRINGS_PER_PASS):
                if not await _step(ctx, schedule_id, moment):
                    break
                fired += 1
        except sqlite3.IntegrityError:
            # the due time was fired meanwhile (the unique index): nothing to do
            log.info("schedule due time already fired", extra={"schedule_id": schedule_id})
        except Exception:
            log.exception("schedule firing failed", extra={"schedule_id": schedule_id})
    if fired:
        log.info("schedules fired", extra={"firings": fired, "at": iso(moment)})
    return fired


async def run_now(ctx: AppContext, schedule_id: int, caller: Caller) -> FiringView:
    """Make the schedule's task now (through pre-flight); recorded in the history as
    ``run_now``. It neither moves the next due time nor counts towards max_runs.
    A refusal is recorded and answered 422 ``preflight_failed``; it escalates unless a
    person logged in to the web UI asked (their own input, in front of them)."""
    own_input = caller.principal.kind == "session"
    failures: list[Failure] = []
    try:
        async with transaction(ctx, caller.actor, caller.client) as tx:
            row = await store.schedule_row_tx(tx.conn, schedule_id)
            if row is None:
                raise not_found()
            firing_id, _, failures = await _fire(
                tx,
                ctx,
                row,
                due_at=utcnow(),
                kind=FiringKind.RUN_NOW,
                make_task=True,
                missed=0,
                escalate=not own_input,
            )
    except sqlite3.IntegrityError as exc:
        raise ApiError(409, "conflict", "the schedule fired at this very moment; retry") from exc
    if failures:
        raise tasks.preflight_error(failures)
    found = await store.firing_row(ctx.db, firing_id)
    if found is None:  # pragma: no cover - committed above
        raise not_found()
    return firing_view(found)


def clock_note(ctx: AppContext) -> str | None:
    """Why schedules are held now (for the UI), or None."""
    state = clock_state(ctx.settings)
    return None if state.trusted else state.detail
