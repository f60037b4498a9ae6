"""Replying to a finished run: a follow-up task that resumes the CLI session."""

from __future__ import annotations

from typing import Any

import httpx

from app.core.context import AppContext
from app.security.principal import Scope
from tests.support.api import TokenFactory, assert_error_shape, bearer
from tests.support.tasks import execute, make_agent, new_task, rows

SESSION = "5f0c1d2e-3a4b-4c5d-8e6f-708192a3b4c5"


async def finished_run(
    client: httpx.AsyncClient, headers: dict[str, str], ctx: AppContext, session: str | None
) -> tuple[dict[str, Any], int]:
    agent = await make_agent(client, headers)
    task = await new_task(client, headers, agent_id=agent["id"])
    (conversation,) = rows(ctx, "SELECT id FROM conversations WHERE task_id = ?", (task["id"],))
    execute(
        ctx,
        "UPDATE conversations SET status = 'SUCCEEDED', session_id = ?,"
        " finished_at = '2026-12-07T06:00:00Z' WHERE id = ?",
        (session, conversation[0]),
    )
    return task, int(conversation[0])


async def test_a_reply_queues_a_task_that_follows_the_run(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    task, conversation = await finished_run(client, admin_headers, ctx, SESSION)
    detail = (await client.get(f"/api/conversations/{conversation}", headers=admin_headers)).json()
    assert detail["session_id"] == SESSION
    response = await client.post(
        f"/api/conversations/{conversation}/follow-up",
        json={"text": "Now make it shorter."},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.text
    follow = response.json()
    assert follow["title"] == f"Follow-up: {task['title']}"
    assert follow["agent_id"] == task["agent_id"]
    (row,) = rows(
        ctx, "SELECT follows_conversation_id, description FROM tasks WHERE id = ?", (follow["id"],)
    )
    assert row == (conversation, "Now make it shorter.")
    queued = rows(ctx, "SELECT status FROM conversations WHERE task_id = ?", (follow["id"],))
    assert queued == [("QUEUED",)]


async def test_a_run_without_a_session_cannot_be_continued(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    _, conversation = await finished_run(client, admin_headers, ctx, None)
    response = await client.post(
        f"/api/conversations/{conversation}/follow-up", json={"text": "more"}, headers=admin_headers
    )
    assert_error_shape(response, 422, "no_session")


async def test_a_running_run_cannot_be_answered_yet(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    agent = await make_agent(client, admin_headers)
    task = await new_task(client, admin_headers, agent_id=agent["id"])
    (conversation,) = rows(ctx, "SELECT id FROM conversations WHERE task_id = ?", (task["id"],))
    response = await client.post(
        f"/api/conversations/{conversation[0]}/follow-up", json={"text": "x"}, headers=admin_headers
    )
    assert_error_shape(response, 409, "run_not_finished")


async def test_a_reply_goes_through_the_gate(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    _, conversation = await finished_run(client, admin_headers, ctx, SESSION)
    secret = "use sk-ant-api03-" + "Q" * 90
    response = await client.post(
        f"/api/conversations/{conversation}/follow-up", json={"text": secret}, headers=admin_headers
    )
    assert response.status_code == 422, response.text
    assert "sk-ant-api03-QQQQ" not in response.text
    assert rows(ctx, "SELECT count(*) FROM tasks WHERE follows_conversation_id IS NOT NULL") == [
        (0,)
    ]


async def test_reading_is_not_enough_to_reply(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    ctx: AppContext,
    make_token: TokenFactory,
) -> None:
    _, conversation = await finished_run(client, admin_headers, ctx, SESSION)
    reader = bearer(await make_token(Scope.READ))
    response = await client.post(
        f"/api/conversations/{conversation}/follow-up", json={"text": "x"}, headers=reader
    )
    assert_error_shape(response, 403)
