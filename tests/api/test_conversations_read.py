"""Reading conversations: list by status, per task, detail with transcript."""

from __future__ import annotations

from typing import Any

import httpx

from app.core.clock import now_iso
from app.core.context import AppContext
from app.security.principal import Scope
from tests.support.api import TokenFactory, assert_error_shape, bearer
from tests.support.tasks import execute, make_agent, new_task, operate_headers


async def test_conversations_are_readable_with_their_transcript(
    client: httpx.AsyncClient,
    ctx: AppContext,
    admin_headers: dict[str, str],
    make_token: TokenFactory,
) -> None:
    operate = await operate_headers(make_token)
    reader = bearer(await make_token(Scope.READ))
    agent: dict[str, Any] = await make_agent(client, admin_headers)
    first = await new_task(client, operate, agent_id=agent["id"], title="first")
    second = await new_task(client, operate, agent_id=agent["id"], title="second")
    execute(
        ctx,
        "UPDATE conversations SET status = 'SUCCEEDED', transcript = ?, truncated = 1,"
        " input_tokens = 120, output_tokens = 80, cost_usd = 0.02, exit_code = 0,"
        " reason = 'done', started_at = ?, finished_at = ? WHERE task_id = ?",
        ("hello\n[output truncated at 5 MB]", now_iso(), now_iso(), first["id"]),
    )
    conversation_id = first["active_conversation_id"]

    detail = await client.get(f"/api/conversations/{conversation_id}", headers=reader)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["status"] == "SUCCEEDED" and body["truncated"] is True
    assert body["transcript"].endswith("[output truncated at 5 MB]")
    assert (body["input_tokens"], body["output_tokens"], body["cost_usd"]) == (120, 80, 0.02)
    assert body["reason"] == "done" and body["task_id"] == first["id"]
    assert "lease_owner" not in body

    listed = (await client.get("/api/conversations", headers=reader)).json()
    assert listed["total"] == 2 and "transcript" not in listed["items"][0]
    queued = (await client.get("/api/conversations?status=QUEUED", headers=reader)).json()
    assert [c["task_id"] for c in queued["items"]] == [second["id"]]
    per_task = (await client.get(f"/api/tasks/{first['id']}/conversations", headers=reader)).json()
    assert [c["id"] for c in per_task["items"]] == [conversation_id]

    assert_error_shape(await client.get("/api/conversations?status=queued", headers=reader), 422)
    assert_error_shape(await client.get("/api/conversations?limit=500", headers=reader), 422)
    assert_error_shape(await client.get("/api/conversations/999", headers=reader), 404)
    assert_error_shape(await client.get("/api/tasks/999/conversations", headers=reader), 404)
    assert (await client.get("/api/conversations")).status_code == 401

    # the runs of a deleted task are no longer listed
    await client.delete(f"/api/tasks/{first['id']}", headers=operate)
    assert_error_shape(
        await client.get(f"/api/conversations/{conversation_id}", headers=reader), 404
    )
    assert (await client.get("/api/conversations", headers=reader)).json()["total"] == 1
