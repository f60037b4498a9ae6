"""Tasks after pre-flight: creation in one transaction, dependencies, status
changes, cancel, edits with versions, soft delete, idempotency, the in-flight
guard, pagination and bad input."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.core.clock import now_iso
from app.core.context import AppContext
from app.core.errors import ApiError
from app.security.principal import Scope
from app.tasks import service
from app.tasks.schemas import TaskCreate, TaskStatus
from tests.support.api import TokenFactory, assert_error_shape, bearer
from tests.support.tasks import (
    GITHUB_TOKEN,
    count,
    domain_snapshot,
    events_of,
    execute,
    make_agent,
    new_task,
    operate_headers,
    post_task,
    rows,
)


@pytest.fixture
async def operate(make_token: TokenFactory) -> dict[str, str]:
    return await operate_headers(make_token)


@pytest.fixture
async def agent(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> dict[str, Any]:
    return await make_agent(client, admin_headers)


async def move(ctx: AppContext, task_id: int, status: TaskStatus) -> dict[str, Any]:
    view = await service.change_task_status(ctx, task_id, status, actor="worker", client="test")
    return view.model_dump()


def conversation_states(ctx: AppContext, task_id: int) -> list[str]:
    return [
        r[0]
        for r in rows(
            ctx, "SELECT status FROM conversations WHERE task_id = ? ORDER BY id", (task_id,)
        )
    ]


async def test_creation_writes_task_run_events_and_audit_together(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    task = await new_task(
        client,
        operate,
        agent_id=agent["id"],
        description="Read the notes and write three bullet points.",
        priority="high",
    )
    assert task["status"] == "queued" and task["priority"] == "high"
    assert task["version"] == 1 and task["depends_on"] == []
    assert task["created_by"].startswith("token:")
    conversation_id = task["active_conversation_id"]
    assert conversation_states(ctx, task["id"]) == ["QUEUED"]
    created = events_of(ctx, "task.created")
    assert [e[0] for e in created] == [task["id"]]
    assert json.loads(created[0][1])["agent_id"] == agent["id"]
    assert [e[0] for e in events_of(ctx, "conversation.queued")] == [conversation_id]
    audit = rows(ctx, "SELECT target, outcome FROM audit_log WHERE action = 'task.create'")
    assert audit == [(f"task:{task['id']}", "ok")]
    detail = await client.get(f"/api/tasks/{task['id']}", headers=operate)
    assert detail.json() == task


async def test_a_task_waits_for_its_dependencies_then_is_queued(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    first = await new_task(client, operate, agent_id=agent["id"], title="first")
    second = await new_task(client, operate, agent_id=agent["id"], title="second")
    third = await new_task(
        client, operate, agent_id=agent["id"], title="third", depends_on=[first["id"], second["id"]]
    )
    assert third["status"] == "queued" and third["active_conversation_id"] is None
    assert third["depends_on"] == sorted([first["id"], second["id"]])
    assert conversation_states(ctx, third["id"]) == []

    await move(ctx, first["id"], TaskStatus.IN_PROGRESS)
    await move(ctx, first["id"], TaskStatus.SUCCEEDED)
    assert conversation_states(ctx, third["id"]) == []  # second is still pending
    await move(ctx, second["id"], TaskStatus.IN_PROGRESS)
    await move(ctx, second["id"], TaskStatus.SUCCEEDED)
    assert conversation_states(ctx, third["id"]) == ["QUEUED"]
    assert [
        e[1]
        for e in rows(
            ctx,
            "SELECT type, subject_id FROM events WHERE type = 'conversation.queued' ORDER BY id",
        )
    ][-1] > 0
    # depending on an already succeeded task queues at once
    fourth = await new_task(
        client, operate, agent_id=agent["id"], title="fourth", depends_on=[first["id"]]
    )
    assert fourth["active_conversation_id"] is not None


async def test_a_failed_dependency_blocks_waiting_tasks_transitively(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    root = await new_task(client, operate, agent_id=agent["id"], title="root")
    child = await new_task(client, operate, agent_id=agent["id"], depends_on=[root["id"]])
    grandchild = await new_task(client, operate, agent_id=agent["id"], depends_on=[child["id"]])
    await move(ctx, root["id"], TaskStatus.IN_PROGRESS)
    await move(ctx, root["id"], TaskStatus.FAILED)
    for task in (child, grandchild):
        detail = await client.get(f"/api/tasks/{task['id']}", headers=operate)
        assert detail.json()["status"] == "blocked"
    changes = [json.loads(e[1]) for e in events_of(ctx, "task.status_changed")]
    assert {"from": "queued", "to": "blocked", "because_of": root["id"]} in changes


async def test_cancel_also_cancels_the_queued_or_running_conversation(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    queued = await new_task(client, operate, agent_id=agent["id"], title="queued")
    running = await new_task(client, operate, agent_id=agent["id"], title="running")
    execute(
        ctx, "UPDATE conversations SET status = 'IN_PROGRESS' WHERE task_id = ?", (running["id"],)
    )
    await move(ctx, running["id"], TaskStatus.IN_PROGRESS)
    for task in (queued, running):
        response = await client.post(f"/api/tasks/{task['id']}/cancel", headers=operate)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"
        assert response.json()["active_conversation_id"] is None
        assert conversation_states(ctx, task["id"]) == ["CANCELLED"]
    reason = rows(
        ctx, "SELECT reason, finished_at FROM conversations WHERE task_id = ?", (running["id"],)
    )[0]
    assert "cancelled" in reason[0] and reason[1]
    assert len(events_of(ctx, "conversation.cancelled")) == 2
    again = await client.post(f"/api/tasks/{queued['id']}/cancel", headers=operate)
    assert_error_shape(again, 409, "invalid_transition")
    assert (await client.post("/api/tasks/999/cancel", headers=operate)).status_code == 404


async def test_change_task_status_for_rules_and_worker(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    task = await new_task(client, operate, agent_id=agent["id"])
    with pytest.raises(ApiError) as refused:
        await service.change_task_status(
            ctx, task["id"], TaskStatus.SUCCEEDED, actor="rule:1", client="rules"
        )
    assert refused.value.status == 409 and refused.value.code == "invalid_transition"
    blocked = await service.change_task_status(
        ctx, task["id"], TaskStatus.BLOCKED, actor="rule:1", client="rules", rule_depth=2
    )
    assert blocked.status is TaskStatus.BLOCKED and blocked.active_conversation_id is None
    last = rows(ctx, "SELECT actor, rule_depth FROM events WHERE type = 'task.status_changed'")
    assert last == [("rule:1", 2)]
    requeued = await service.change_task_status(
        ctx, task["id"], TaskStatus.QUEUED, actor="rule:1", client="rules", rule_depth=1
    )
    assert requeued.active_conversation_id is not None
    assert conversation_states(ctx, task["id"]) == ["CANCELLED", "QUEUED"]


async def test_create_task_service_is_usable_by_the_rules_engine(
    ctx: AppContext, agent: dict[str, Any]
) -> None:
    view = await service.create_task(
        ctx,
        TaskCreate(title="from a rule", agent_id=agent["id"], priority="low"),
        actor="rule:7",
        client="rules",
        rule_depth=1,
    )
    assert view.created_by == "rule:7"
    assert rows(ctx, "SELECT rule_depth FROM events WHERE type = 'task.created'") == [(1,)]
    with pytest.raises(ApiError) as refused:
        await service.create_task(
            ctx,
            TaskCreate(title=f"leak {GITHUB_TOKEN}", agent_id=agent["id"]),
            actor="rule:7",
            client="rules",
            rule_depth=1,
        )
    assert refused.value.status == 422
    assert refused.value.details[0]["check"] == "no_credentials_in_text"
    assert rows(ctx, "SELECT rule_depth FROM events WHERE type = 'task.refused'") == [(1,)]


async def test_patch_needs_the_current_version_and_passes_the_gate(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    task = await new_task(client, operate, agent_id=agent["id"])
    url = f"/api/tasks/{task['id']}"
    changed = await client.patch(
        url, json={"version": 1, "title": "  Better title ", "priority": "urgent"}, headers=operate
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "Better title" and changed.json()["version"] == 2
    stale = await client.patch(url, json={"version": 1, "title": "x"}, headers=operate)
    assert_error_shape(stale, 409, "conflict")

    before = domain_snapshot(ctx)
    leak = await client.patch(
        url, json={"version": 2, "description": f"token {GITHUB_TOKEN}"}, headers=operate
    )
    assert_error_shape(leak, 422, "preflight_failed")
    assert leak.json()["error"]["details"][0]["check"] == "no_credentials_in_text"
    bad = await client.patch(
        url,
        json={"version": 2, "priority": "meh", "due_at": "yesterday", "title": ""},
        headers=operate,
    )
    assert {d["check"] for d in bad.json()["error"]["details"]} == {
        "priority_valid",
        "due_date_valid",
        "title_length",
    }
    assert_error_shape(await client.patch(url, json={"version": 2}, headers=operate), 422)
    assert_error_shape(
        await client.patch(url, json={"version": 2, "agent_id": 5}, headers=operate), 422
    )
    assert_error_shape(
        await client.patch(url, json={"version": 2, "title": None}, headers=operate), 422
    )
    assert domain_snapshot(ctx) == before
    assert count(ctx, "audit_log", "action = 'task.update' AND outcome = 'refused'") >= 2

    cleared = await client.patch(url, json={"version": 2, "due_at": None}, headers=operate)
    assert cleared.status_code == 200 and cleared.json()["due_at"] is None
    await client.post(f"{url}/cancel", headers=operate)
    late = await client.patch(url, json={"version": 4, "title": "y"}, headers=operate)
    assert_error_shape(late, 409, "task_not_editable")
    assert json.loads(events_of(ctx, "task.updated")[0][1]) == {"fields": ["priority", "title"]}


async def test_soft_delete(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    task = await new_task(client, operate, agent_id=agent["id"], idempotency_key="once")
    waiting = await new_task(client, operate, agent_id=agent["id"], depends_on=[task["id"]])
    running = await new_task(client, operate, agent_id=agent["id"], title="busy")
    await move(ctx, running["id"], TaskStatus.IN_PROGRESS)

    refused = await client.delete(f"/api/tasks/{running['id']}", headers=operate)
    assert_error_shape(refused, 409, "task_in_progress")

    deleted = await client.delete(f"/api/tasks/{task['id']}", headers=operate)
    assert deleted.status_code == 204
    assert_error_shape(await client.get(f"/api/tasks/{task['id']}", headers=operate), 404)
    listed = (await client.get("/api/tasks", headers=operate)).json()
    assert task["id"] not in [t["id"] for t in listed["items"]]
    assert rows(ctx, "SELECT deleted_at IS NOT NULL FROM tasks WHERE id = ?", (task["id"],)) == [
        (1,)
    ]
    assert conversation_states(ctx, task["id"]) == ["CANCELLED"]
    detail = await client.get(f"/api/tasks/{waiting['id']}", headers=operate)
    assert detail.json()["status"] == "blocked"
    assert_error_shape(await client.delete(f"/api/tasks/{task['id']}", headers=operate), 404)
    # the key of a deleted task is free again
    again = await post_task(client, operate, agent_id=agent["id"], idempotency_key="once")
    assert again.status_code == 201
    assert rows(ctx, "SELECT outcome FROM audit_log WHERE action = 'task.delete'") == [("ok",)]


async def test_an_identical_repeat_with_the_same_key_returns_the_task(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    body = {
        "agent_id": agent["id"],
        "idempotency_key": "report-2030-01-01",
        # the same moment written two ways is the same content
        "due_at": (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0).isoformat(),
    }
    first = await post_task(client, operate, **body)
    assert first.status_code == 201
    before = domain_snapshot(ctx)
    events_before = count(ctx, "events")
    body["due_at"] = first.json()["due_at"]
    repeat = await post_task(client, operate, **body)
    assert repeat.status_code == 200, repeat.text
    assert repeat.json()["id"] == first.json()["id"]
    assert domain_snapshot(ctx) == before
    assert count(ctx, "events") == events_before


async def test_in_flight_guard_in_the_database(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    task = await new_task(client, operate, agent_id=agent["id"])
    insert = (
        "INSERT INTO conversations (task_id, agent_id, status, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?)"
    )
    for status in ("QUEUED", "IN_PROGRESS"):
        with pytest.raises(sqlite3.IntegrityError):
            execute(ctx, insert, (task["id"], agent["id"], status, now_iso(), now_iso()))
    execute(ctx, "UPDATE conversations SET status = 'IN_PROGRESS' WHERE task_id = ?", (task["id"],))
    with pytest.raises(sqlite3.IntegrityError):
        execute(ctx, insert, (task["id"], agent["id"], "QUEUED", now_iso(), now_iso()))
    # finished runs do not count: a new run may be queued after one ends
    execute(ctx, "UPDATE conversations SET status = 'FAILED' WHERE task_id = ?", (task["id"],))
    execute(ctx, insert, (task["id"], agent["id"], "QUEUED", now_iso(), now_iso()))
    assert conversation_states(ctx, task["id"]) == ["FAILED", "QUEUED"]


async def test_list_is_paginated_filtered_and_stable(
    client: httpx.AsyncClient,
    ctx: AppContext,
    operate: dict[str, str],
    agent: dict[str, Any],
    admin_headers: dict[str, str],
    make_token: TokenFactory,
) -> None:
    other = await make_agent(client, admin_headers, name="other")
    ids = [
        (await new_task(client, operate, agent_id=a["id"], title=f"t{i}"))["id"]
        for i, a in enumerate([agent, other, agent, other, agent])
    ]
    await client.post(f"/api/tasks/{ids[0]}/cancel", headers=operate)
    reader = bearer(await make_token(Scope.READ))
    seen: list[int] = []
    offset: int | None = 0
    while offset is not None:
        page = (await client.get(f"/api/tasks?limit=2&offset={offset}", headers=reader)).json()
        assert page["total"] == 5 and len(page["items"]) <= 2
        seen += [t["id"] for t in page["items"]]
        offset = page["next_offset"]
    assert seen == sorted(ids, reverse=True)
    by_agent = (await client.get(f"/api/tasks?agent_id={other['id']}", headers=reader)).json()
    assert {t["id"] for t in by_agent["items"]} == {ids[1], ids[3]}
    cancelled = (await client.get("/api/tasks?status=cancelled", headers=reader)).json()
    assert [t["id"] for t in cancelled["items"]] == [ids[0]]
    assert (await client.get("/api/tasks?mission_id=1", headers=reader)).json()["total"] == 0
    for query in ("limit=201", "limit=0", "offset=-1", "status=done", "agent_id=abc"):
        assert_error_shape(await client.get(f"/api/tasks?{query}", headers=reader), 422)
    refused = await post_task(client, reader, agent_id=agent["id"])
    assert_error_shape(refused, 403, "insufficient_scope")


BAD_BODIES: list[tuple[str, Any, int]] = [
    ("wrong type agent", {"title": "t", "agent_id": "1"}, 422),
    ("float agent", {"title": "t", "agent_id": 1.5}, 422),
    ("bool shell as string", {"title": "t", "agent_id": 1, "needs_shell": "yes"}, 422),
    ("unknown field", {"title": "t", "agent_id": 1, "status": "succeeded"}, 422),
    ("unknown tool", {"title": "t", "agent_id": 1, "required_tools": ["rm"]}, 422),
    ("depends twice", {"title": "t", "agent_id": 1, "depends_on": [1, 1]}, 422),
    ("too many deps", {"title": "t", "agent_id": 1, "depends_on": list(range(1, 60))}, 422),
    ("huge id", {"title": "t", "agent_id": 2**70}, 422),
    ("bad key", {"title": "t", "agent_id": 1, "idempotency_key": "a b/c"}, 422),
    ("huge title", {"title": "x" * 10_001, "agent_id": 1}, 422),
    ("huge description", {"title": "t", "agent_id": 1, "description": "d" * 100_001}, 422),
    ("missing title", {"agent_id": 1}, 422),
    ("null body", None, 422),
    ("array body", [], 422),
]


@pytest.mark.parametrize(("label", "body", "status"), BAD_BODIES)
async def test_bad_input_is_refused_cleanly(
    client: httpx.AsyncClient,
    ctx: AppContext,
    operate: dict[str, str],
    agent: dict[str, Any],
    label: str,
    body: Any,
    status: int,
) -> None:
    before = domain_snapshot(ctx)
    response = await client.post("/api/tasks", json=body, headers=operate)
    assert_error_shape(response, status, "validation_failed")
    assert domain_snapshot(ctx) == before, label


async def test_oversized_and_malformed_bodies(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    headers = {**operate, "Content-Type": "application/json"}
    huge = json.dumps({"title": "t", "agent_id": agent["id"], "description": "x" * 2_000_000})
    assert_error_shape(await client.post("/api/tasks", content=huge, headers=headers), 413)
    malformed = await client.post("/api/tasks", content=b'{"title": ', headers=headers)
    assert_error_shape(malformed, 400, "invalid_json")
    assert count(ctx, "tasks") == 0
    assert_error_shape(await client.get(f"/api/tasks/{2**70}", headers=operate), 422)
    assert_error_shape(await client.get("/api/tasks/0", headers=operate), 422)
