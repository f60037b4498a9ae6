"""Schedules over the API and the firing pass (docs/schedules.md): creation and bad
input, scopes, pause/resume, run now, the history, the next five due times, the
missed-run policy, the clock gate, max_runs, ends_at, pre-flight at every firing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.care.clock import fixed, use_probe
from app.core.clock import parse_iso
from app.core.context import AppContext
from app.schedules import service
from app.security.principal import Scope
from tests.support.api import TokenFactory, assert_error_shape, bearer
from tests.support.tasks import count, execute, make_agent, operate_headers, rows


@pytest.fixture
async def operate(make_token: TokenFactory) -> dict[str, str]:
    return await operate_headers(make_token)


@pytest.fixture
async def agent(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> dict[str, Any]:
    return await make_agent(client, admin_headers)


@pytest.fixture
def synced() -> Iterator[None]:
    with use_probe(fixed(True)):
        yield


async def new_schedule(
    client: httpx.AsyncClient, headers: dict[str, str], agent_id: int, **fields: Any
) -> dict[str, Any]:
    body = {
        "name": "morning issues",
        "cron": "0 * * * *",
        "title": "Summarise the new issues",
        "agent_id": agent_id,
        **fields,
    }
    response = await client.post("/api/schedules", json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def first_due(schedule: dict[str, Any]) -> datetime:
    return parse_iso(schedule["next_due"][0])


def firings(ctx: AppContext, schedule_id: int) -> list[tuple[Any, ...]]:
    return rows(
        ctx,
        "SELECT due_at, kind, outcome, task_id, missed FROM schedule_firings"
        " WHERE schedule_id = ? ORDER BY id",
        (schedule_id,),
    )


def scheduled_tasks(ctx: AppContext, schedule_id: int) -> int:
    return count(ctx, "tasks", "created_by = ?", (f"schedule:{schedule_id}",))


# --- creation, reading, scopes ----------------------------------------------------------------


async def test_create_list_and_read_with_the_next_five_due_times(
    client: httpx.AsyncClient, operate: dict[str, str], agent: dict[str, Any], make_token: Any
) -> None:
    created = await new_schedule(
        client, operate, agent["id"], cron="0 7 * * MON-FRI", timezone="Europe/Paris"
    )
    assert created["status"] == "active" and created["missed_policy"] == "run_once"
    assert created["cron_explained"] == "At 07:00 on Monday through Friday"
    due = [parse_iso(d) for d in created["next_due"]]
    assert len(due) == 5 and due == sorted(due)
    for moment in due:
        local = moment.astimezone(ZoneInfo("Europe/Paris"))
        assert (local.hour, local.minute, local.weekday() < 5) == (7, 0, True)
    read = bearer(await make_token(Scope.READ))
    listed = (await client.get("/api/schedules", headers=read)).json()
    assert [s["id"] for s in listed["items"]] == [created["id"]] and listed["total"] == 1
    one = await client.get(f"/api/schedules/{created['id']}", headers=read)
    assert one.json()["next_due"] == created["next_due"]
    history = await client.get(f"/api/schedules/{created['id']}/firings", headers=read)
    assert history.json()["items"] == []


async def test_read_scope_cannot_create_pause_or_run(
    client: httpx.AsyncClient,
    operate: dict[str, str],
    agent: dict[str, Any],
    make_token: TokenFactory,
    ctx: AppContext,
) -> None:
    schedule = await new_schedule(client, operate, agent["id"])
    read = bearer(await make_token(Scope.READ))
    body = {"name": "x", "cron": "* * * * *", "title": "t", "agent_id": agent["id"]}
    assert_error_shape(await client.post("/api/schedules", json=body, headers=read), 403)
    for action in ("pause", "resume", "run"):
        response = await client.post(f"/api/schedules/{schedule['id']}/{action}", headers=read)
        assert_error_shape(response, 403)
    assert_error_shape(await client.delete(f"/api/schedules/{schedule['id']}", headers=read), 403)
    assert count(ctx, "schedules") == 1 and count(ctx, "schedule_firings") == 0


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"cron": "61 * * * *"}, "cron", "not valid"),
        ({"cron": "every morning"}, "cron", "five fields"),
        ({"cron": "0 0 7 * * *"}, "cron", "five fields"),
        ({"cron": "0 0 31 2 *"}, "cron", "not valid"),
        ({"timezone": "Mars/Olympus"}, "timezone", "IANA name"),
        ({"timezone": "../../etc/passwd"}, "timezone", "IANA name"),
        ({"timezone": "localtime"}, "timezone", "IANA name"),
        ({"starts_at": "tomorrow"}, "starts_at", "ISO-8601"),
        ({"starts_at": "0001-01-01T00:00+01:00"}, "starts_at", "year 2000"),
        ({"ends_at": "9999-12-31T23:59:59-14:00"}, "ends_at", "years from now"),
        ({"ends_at": "2020-01-01T00:00Z"}, "ends_at", "later than"),
        ({"title": "use ghp_" + "a1B2c3D4" * 5}, "title", "credential"),
        ({"agent_id": 999}, "agent_id", "no agent"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field_and_the_fix(
    client: httpx.AsyncClient,
    operate: dict[str, str],
    agent: dict[str, Any],
    ctx: AppContext,
    fields: dict[str, Any],
    field: str,
    words: str,
) -> None:
    body = {"name": "n", "cron": "0 * * * *", "title": "t", "agent_id": agent["id"], **fields}
    response = await client.post("/api/schedules", json=body, headers=operate)
    assert_error_shape(response, 422, "validation_failed")
    details = response.json()["error"]["details"]
    assert any(d["field"] == field and words in d["message"] for d in details), details
    assert count(ctx, "schedules") == 0


async def test_unknown_fields_and_bad_types_are_422_not_500(
    client: httpx.AsyncClient, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    base = {"name": "n", "cron": "0 * * * *", "title": "t", "agent_id": agent["id"]}
    for extra in ({"every": "day"}, {"max_runs": 0}, {"missed_policy": "all"}, {"cron": 7}):
        response = await client.post("/api/schedules", json={**base, **extra}, headers=operate)
        assert_error_shape(response, 422)


async def test_pause_resume_and_their_conflicts(
    client: httpx.AsyncClient, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    schedule = await new_schedule(client, operate, agent["id"])
    sid = schedule["id"]
    paused = (await client.post(f"/api/schedules/{sid}/pause", headers=operate)).json()
    assert paused["status"] == "paused" and paused["next_due"] == []
    again = await client.post(f"/api/schedules/{sid}/pause", headers=operate)
    assert_error_shape(again, 409, "invalid_transition")
    resumed = (await client.post(f"/api/schedules/{sid}/resume", headers=operate)).json()
    assert resumed["status"] == "active" and len(resumed["next_due"]) == 5
    missing = await client.post("/api/schedules/9999/pause", headers=operate)
    assert_error_shape(missing, 404, "not_found")


async def test_run_now_makes_a_task_through_preflight_and_records_it(
    client: httpx.AsyncClient, operate: dict[str, str], agent: dict[str, Any], ctx: AppContext
) -> None:
    schedule = await new_schedule(client, operate, agent["id"])
    sid = schedule["id"]
    response = await client.post(f"/api/schedules/{sid}/run", headers=operate)
    assert response.status_code == 201, response.text
    firing = response.json()
    assert (firing["kind"], firing["outcome"]) == ("run_now", "created")
    task = rows(ctx, "SELECT title, agent_id FROM tasks WHERE id = ?", (firing["task_id"],))
    assert task == [("Summarise the new issues", agent["id"])]
    # run now neither moves the next due time nor counts towards max_runs
    after = (await client.get(f"/api/schedules/{sid}", headers=operate)).json()
    assert after["next_due"] == schedule["next_due"] and after["runs"] == 0

    # the agent is paused: pre-flight refuses, the refusal is in the history
    execute(ctx, "UPDATE agents SET status = 'paused' WHERE id = ?", (agent["id"],))
    refused = await client.post(f"/api/schedules/{sid}/run", headers=operate)
    assert_error_shape(refused, 422, "preflight_failed")
    assert {d["check"] for d in refused.json()["error"]["details"]} == {"agent_active"}
    history = (await client.get(f"/api/schedules/{sid}/firings", headers=operate)).json()
    assert [(f["kind"], f["outcome"]) for f in history["items"]] == [
        ("run_now", "refused"),
        ("run_now", "created"),
    ]
    assert count(ctx, "tasks") == 1


async def test_delete_hides_the_schedule_and_stops_it(
    client: httpx.AsyncClient,
    operate: dict[str, str],
    agent: dict[str, Any],
    ctx: AppContext,
    synced: None,
) -> None:
    schedule = await new_schedule(client, operate, agent["id"])
    response = await client.delete(f"/api/schedules/{schedule['id']}", headers=operate)
    assert response.status_code == 204
    missing = await client.get(f"/api/schedules/{schedule['id']}", headers=operate)
    assert_error_shape(missing, 404)
    assert await service.fire_due_schedules(ctx, first_due(schedule) + timedelta(seconds=5)) == 0


# --- the firing pass --------------------------------------------------------------------------


async def test_a_due_time_fires_once_and_makes_a_task_through_preflight(
    client: httpx.AsyncClient,
    operate: dict[str, str],
    agent: dict[str, Any],
    ctx: AppContext,
    synced: None,
) -> None:
    schedule = await new_schedule(client, operate, agent["id"], priority="high")
    sid, due = schedule["id"], first_due(schedule)
    assert await service.fire_due_schedules(ctx, due - timedelta(seconds=1)) == 0
    assert await service.fire_due_schedules(ctx, due + timedelta(seconds=20)) == 1
    assert await service.fire_due_schedules(ctx, due + timedelta(seconds=40)) == 0
    [(due_at, kind, outcome, task_id, missed)] = firings(ctx, sid)
    assert (parse_iso(due_at), kind, outcome, missed) == (due, "due", "created", 0)
    task = rows(ctx, "SELECT priority, created_by, status FROM tasks WHERE id = ?", (task_id,))
    assert task == [("high", f"schedule:{sid}", "queued")]
    # the task, its run, the firing, events and audit came in together
    assert count(ctx, "conversations", "task_id = ?", (task_id,)) == 1
    assert count(ctx, "events", "type = 'schedule.fired' AND subject_id = ?", (sid,)) == 1
    assert count(ctx, "audit_log", "action = 'schedule.fire'") == 1
    view = (await client.get(f"/api/schedules/{sid}", headers=operate)).json()
    assert view["runs"] == 1 and parse_iso(view["next_due"][0]) > due


async def test_every_firing_goes_through_preflight_and_one_escalation_is_opened(
    client: httpx.AsyncClient,
    operate: dict[str, str],
    agent: dict[str, Any],
    ctx: AppContext,
    synced: None,
) -> None:
    schedule = await new_schedule(client, operate, agent["id"])
    sid, due = schedule["id"], first_due(schedule)
    execute(ctx, "UPDATE agents SET quota_runs_per_day = 0 WHERE id = ?", (agent["id"],))
    await service.fire_due_schedules(ctx, due + timedelta(seconds=10))
    await service.fire_due_schedules(ctx, due + timedelta(hours=1, seconds=10))
    assert [(f[1], f[2], f[3]) for f in firings(ctx, sid)] == [
        ("due", "refused", None),
        ("due", "refused", None),
    ]
    assert scheduled_tasks(ctx, sid) == 0
    detail = rows(ctx, "SELECT detail FROM schedule_firings WHERE schedule_id = ?", (sid,))
    assert detail[0][0] == "agent_within_quota"
    escalations = "kind = 'preflight_refused' AND subject_type = 'schedule' AND subject_id = ?"
    assert count(ctx, "escalations", escalations, (sid,)) == 1
    assert count(ctx, "audit_log", "action = 'task.create' AND outcome = 'refused'") == 2


async def test_missed_run_policy_after_three_hours_down_runs_once(
    client: httpx.AsyncClient,
    operate: dict[str, str],
    agent: dict[str, Any],
    ctx: AppContext,
    synced: None,
) -> None:
    schedule = await new_schedule(client, operate, agent["id"])  # hourly
    sid, due = schedule["id"], first_due(schedule)
    # the worker was down from just before the first due time for three hours and more
    back = due + timedelta(hours=3, minutes=30)
    assert await service.fire_due_schedules(ctx, back) == 1
    [(due_at, kind, outcome, _, missed)] = firings(ctx, sid)
    assert (parse_iso(due_at), kind, outcome, missed) == (
        due + timedelta(hours=3),
        "caught_up",
        "created",
        3,
    )
    assert scheduled_tasks(ctx, sid) == 1
    # and then on time again
    assert await service.fire_due_schedules(ctx, due + timedelta(hours=4, seconds=30)) == 1
    assert [f[1] for f in firings(ctx, sid)] == ["caught_up", "due"]
    assert scheduled_tasks(ctx, sid) == 2


async def test_missed_run_policy_skip_makes_no_task_for_missed_times(
    client: httpx.AsyncClient,
    operate: dict[str, str],
    agent: dict[str, Any],
    ctx: AppContext,
    synced: None,
) -> None:
    schedule = await new_schedule(client, operate, agent["id"], missed_policy="skip")
    sid, due = schedule["id"], first_due(schedule)
    assert await service.fire_due_schedules(ctx, due + timedelta(hours=3, minutes=30)) == 1
    [(_, kind, outcome, task_id, missed)] = firings(ctx, sid)
    assert (kind, outcome, task_id, missed) == ("caught_up", "skipped", None, 3)
    assert scheduled_tasks(ctx, sid) == 0


async def test_an_on_time_due_time_fires_and_the_missed_ones_are_only_counted(
    client: httpx.AsyncClient,
    operate: dict[str, str],
    agent: dict[str, Any],
    ctx: AppContext,
    synced: None,
) -> None:
    schedule = await new_schedule(client, operate, agent["id"])
    sid, due = schedule["id"], first_due(schedule)
    assert await service.fire_due_schedules(ctx, due + timedelta(hours=2, minutes=1)) == 1
    [(due_at, kind, outcome, _, missed)] = firings(ctx, sid)
    assert (parse_iso(due_at), kind, outcome, missed) == (
        due + timedelta(hours=2),
        "due",
        "created",
        2,
    )


@pytest.mark.parametrize("answer", [False, None])
async def test_nothing_fires_while_the_clock_is_not_synchronised(
    client: httpx.AsyncClient,
    operate: dict[str, str],
    agent: dict[str, Any],
    ctx: AppContext,
    answer: bool | None,
) -> None:
    schedule = await new_schedule(client, operate, agent["id"])
    sid, due = schedule["id"], first_due(schedule)
    with use_probe(fixed(answer)):
        assert await service.fire_due_schedules(ctx, due + timedelta(seconds=30)) == 0
        assert await service.fire_due_schedules(ctx, due + timedelta(hours=2)) == 0
    assert firings(ctx, sid) == [] and scheduled_tasks(ctx, sid) == 0
    cursor = rows(ctx, "SELECT handled_through FROM schedules WHERE id = ?", (sid,))[0][0]
    assert parse_iso(cursor) < due
    # synchronised at last: the missed-run policy handles what passed, once
    with use_probe(fixed(True)):
        assert await service.fire_due_schedules(ctx, due + timedelta(hours=2, minutes=10)) == 1
    assert [(f[1], f[4]) for f in firings(ctx, sid)] == [("caught_up", 2)]
    assert scheduled_tasks(ctx, sid) == 1


async def test_max_runs_ends_the_schedule(
    client: httpx.AsyncClient,
    operate: dict[str, str],
    agent: dict[str, Any],
    ctx: AppContext,
    synced: None,
) -> None:
    schedule = await new_schedule(client, operate, agent["id"], max_runs=2)
    sid, due = schedule["id"], first_due(schedule)
    assert len(schedule["next_due"]) == 2
    for hour in range(4):
        await service.fire_due_schedules(ctx, due + timedelta(hours=hour, seconds=5))
    assert scheduled_tasks(ctx, sid) == 2
    view = (await client.get(f"/api/schedules/{sid}", headers=operate)).json()
    assert (view["status"], view["ended_reason"], view["next_due"]) == (
        "ended",
        "max_runs reached",
        [],
    )
    assert_error_shape(await client.post(f"/api/schedules/{sid}/resume", headers=operate), 409)


async def test_ends_at_stops_firing_and_ends_the_schedule(
    client: httpx.AsyncClient,
    operate: dict[str, str],
    agent: dict[str, Any],
    ctx: AppContext,
    synced: None,
) -> None:
    probe = await new_schedule(client, operate, agent["id"], name="probe")
    due = first_due(probe)
    end = due + timedelta(hours=1, minutes=30)
    schedule = await new_schedule(
        client, operate, agent["id"], ends_at=end.isoformat(), name="ends"
    )
    sid = schedule["id"]
    assert len(schedule["next_due"]) == 2
    for hour in range(4):
        await service.fire_due_schedules(ctx, due + timedelta(hours=hour, seconds=5))
    assert scheduled_tasks(ctx, sid) == 2
    status = rows(ctx, "SELECT status, ended_reason FROM schedules WHERE id = ?", (sid,))
    assert status == [("ended", "no due time before ends_at")]


async def test_a_start_in_the_future_is_respected(
    client: httpx.AsyncClient,
    operate: dict[str, str],
    agent: dict[str, Any],
    ctx: AppContext,
    synced: None,
) -> None:
    start = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    schedule = await new_schedule(client, operate, agent["id"], starts_at=start.isoformat())
    assert first_due(schedule) == start
    assert await service.fire_due_schedules(ctx, start - timedelta(hours=1)) == 0
    assert await service.fire_due_schedules(ctx, start + timedelta(seconds=1)) == 1


async def test_paused_schedules_do_not_fire_and_resume_skips_what_passed(
    client: httpx.AsyncClient,
    operate: dict[str, str],
    agent: dict[str, Any],
    ctx: AppContext,
    synced: None,
) -> None:
    schedule = await new_schedule(client, operate, agent["id"])
    sid, due = schedule["id"], first_due(schedule)
    await client.post(f"/api/schedules/{sid}/pause", headers=operate)
    assert await service.fire_due_schedules(ctx, due + timedelta(seconds=5)) == 0
    await client.post(f"/api/schedules/{sid}/resume", headers=operate)
    assert firings(ctx, sid) == []


def test_daylight_saving_changes_fire_once_at_the_local_time() -> None:
    """docs/schedules.md: the skipped hour runs right after the change, the repeated
    hour once (cronsim's Debian cron rules)."""
    paris = ZoneInfo("Europe/Paris")
    spring = service.due_times("30 2 * * *", paris, datetime(2027, 3, 27, 12, tzinfo=UTC), 2, None)
    assert [m.astimezone(paris).strftime("%d %H:%M %Z") for m in spring] == [
        "28 03:00 CEST",
        "29 02:30 CEST",
    ]
    autumn = service.due_times("30 2 * * *", paris, datetime(2027, 10, 30, 12, tzinfo=UTC), 2, None)
    assert [m.strftime("%d %H:%M") for m in autumn] == ["31 00:30", "01 01:30"]
