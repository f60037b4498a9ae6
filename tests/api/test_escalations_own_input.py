"""Escalations are for what needs a human.

A person's own refused input at a form (a login session) is a form error: it is
audited and answered in place, and opens no escalation and no notification. The
same refusal from an API token (a script, an agent's helper) still escalates.
Several escalations can be acknowledged or resolved at once.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from app.core.context import AppContext
from app.events.transaction import transaction
from app.security.principal import Scope
from tests.support.api import TokenFactory, assert_error_shape, bearer
from tests.support.tasks import (
    GITHUB_TOKEN,
    add_user,
    count,
    make_agent,
    mission_body,
    rows,
    session_client,
)

URL = "/api/escalations"


def refused_bodies(agent_id: int) -> list[tuple[str, dict[str, Any]]]:
    """Ten mistakes a person makes at the task and mission forms."""
    task = {"title": "Summarise the notes", "agent_id": agent_id}
    return [
        ("/api/tasks", {**task, "title": "   "}),
        ("/api/tasks", {**task, "title": "x" * 300}),
        ("/api/tasks", {**task, "description": f"use {GITHUB_TOKEN}"}),
        ("/api/tasks", {**task, "due_at": "2001-01-01T00:00:00+00:00"}),
        ("/api/tasks", {**task, "agent_id": 4242}),
        ("/api/tasks", {**task, "priority": "someday"}),
        ("/api/tasks", {**task, "depends_on": [999]}),
        ("/api/missions", mission_body([agent_id], bounds={"cost_usd": 50})),
        ("/api/missions", mission_body([agent_id], bounds={"tokens": 10**9})),
        ("/api/missions", mission_body([agent_id], goal=f"with {GITHUB_TOKEN}")),
    ]


async def test_ten_refused_form_submissions_open_no_escalation(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    agent = await make_agent(client, admin_headers)
    await add_user(ctx, "olive", Scope.OPERATE)
    notifications_before = count(ctx, "notifications")
    async with session_client(app, "olive") as person:
        for url, body in refused_bodies(agent["id"]):
            response = await person.post(url, json=body)
            assert response.status_code == 422, (url, body, response.text)
    assert count(ctx, "escalations") == 0
    assert count(ctx, "notifications") == notifications_before
    refused = rows(
        ctx,
        "SELECT action, actor FROM audit_log WHERE outcome = 'refused' ORDER BY id",
    )
    assert len(refused) == 10
    assert {actor for _, actor in refused} == {"user:olive"}
    assert {action for action, _ in refused} == {"task.create", "mission.propose"}


async def test_the_same_refusals_from_a_token_still_escalate(
    client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str], make_token: Any
) -> None:
    agent = await make_agent(client, admin_headers)
    script = bearer(await make_token(Scope.OPERATE))
    for url, body in refused_bodies(agent["id"]):
        response = await client.post(url, json=body, headers=script)
        assert response.status_code == 422, (url, body, response.text)
    kinds = [k for (k,) in rows(ctx, "SELECT kind FROM escalations ORDER BY id")]
    # every refused task, and the two proposals above a ceiling
    assert kinds.count("preflight_refused") == 7
    assert kinds.count("mission_bound_exceeded") == 2
    assert count(ctx, "notifications", "category = 'escalation'") == 9
    reasons = [
        r
        for (r,) in rows(
            ctx, "SELECT reason FROM escalations WHERE kind = ?", ("preflight_refused",)
        )
    ]
    # agents by name, not number
    assert sum("a task for agent worker-1 by token:" in r for r in reasons) == 6
    assert sum("agent #4242 (no such agent)" in r for r in reasons) == 1


async def escalate(ctx: AppContext, n: int) -> list[int]:
    ids = []
    async with transaction(ctx, "system:test") as tx:
        for i in range(n):
            ids.append(await tx.escalate("quota_hit", "agent", i + 1, "over quota", {}))
    return ids


async def test_bulk_acknowledge_and_resolve(
    client: httpx.AsyncClient, ctx: AppContext, make_token: TokenFactory
) -> None:
    operate = bearer(await make_token(Scope.OPERATE))
    ids = await escalate(ctx, 4)
    one = await client.post(f"{URL}/{ids[0]}/resolve", headers=operate, json={"comment": "x"})
    assert one.status_code == 200

    acked = await client.post(f"{URL}/acknowledge", headers=operate, json={"ids": [*ids, 9999]})
    assert acked.status_code == 200, acked.text
    assert acked.json()["done"] == ids[1:]
    assert acked.json()["skipped"] == [
        {"id": ids[0], "reason": "it is resolved; it cannot become acknowledged"},
        {"id": 9999, "reason": "no such escalation"},
    ]
    statuses = rows(ctx, "SELECT status FROM escalations ORDER BY id")
    assert [s for (s,) in statuses] == ["resolved", "acknowledged", "acknowledged", "acknowledged"]

    body = {"ids": ids, "comment": f"quota raised {GITHUB_TOKEN}"}
    resolved = await client.post(f"{URL}/resolve", headers=operate, json=body)
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["done"] == ids[1:]
    assert [s["id"] for s in resolved.json()["skipped"]] == [ids[0]]
    comments = rows(ctx, "SELECT resolution_comment FROM escalations WHERE id != ?", (ids[0],))
    assert {c for (c,) in comments} == {"quota raised [REDACTED:github_token]"}
    audit = rows(
        ctx,
        "SELECT action FROM audit_log WHERE action LIKE 'escalation.%' AND summary LIKE '%bulk%'",
    )
    assert len(audit) == 6
    events = rows(ctx, "SELECT type FROM events WHERE type LIKE 'escalation.%' ORDER BY id")
    assert [t for (t,) in events].count("escalation.resolved") == 4


async def test_bulk_needs_operate_a_comment_and_a_bounded_list(
    client: httpx.AsyncClient, ctx: AppContext, make_token: TokenFactory
) -> None:
    reader = bearer(await make_token(Scope.READ))
    operate = bearer(await make_token(Scope.OPERATE))
    ids = await escalate(ctx, 1)
    refused = await client.post(f"{URL}/acknowledge", headers=reader, json={"ids": ids})
    assert_error_shape(refused, 403, "insufficient_scope")
    for body in (
        {"ids": ids},
        {"ids": ids, "comment": "   "},
        {"ids": [], "comment": "ok"},
        {"ids": list(range(1, 202)), "comment": "ok"},
        {"ids": [0], "comment": "ok"},
    ):
        response = await client.post(f"{URL}/resolve", headers=operate, json=body)
        assert_error_shape(response, 422, "validation_failed")
    assert rows(ctx, "SELECT status FROM escalations") == [("open",)]
