"""A shell task held for a person's approval says so wherever it is read
(docs/security-model.md, "A shell needs a person"; app/tasks/approval.py).

Its status stays ``queued`` (no run is queued until an admin approves it), so the
task view's ``approval`` field is what tells its owner it waits for a person: on
the task itself, in the list, in the queued filter. The pages read the same
field for their "waiting for ... approval" badge, linked to the approval panel
(the browser test: tests/browser/test_task_waiting_badge.py).

Real SQLite, the real app.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import FastAPI

from app.core.context import AppContext
from app.security.principal import Scope
from tests.support.api import TokenFactory, bearer
from tests.support.rules import create_shell_agent
from tests.support.tasks import add_user, session_client

SHELL_TASK = {"title": "prune the logs", "description": "delete old logs", "needs_shell": True}
BADGE = re.compile(
    r'<a class="badge warn waiting" data-waiting="approval" href="([^"]+)">([^<]+)</a>'
)


def by_id(items: list[dict[str, Any]], task_id: int) -> dict[str, Any]:
    return next(item for item in items if item["id"] == task_id)


async def test_the_task_view_says_a_held_shell_task_waits_for_approval(
    app: FastAPI,
    client: httpx.AsyncClient,
    ctx: AppContext,
    admin_headers: dict[str, str],
    make_token: TokenFactory,
) -> None:
    agent = await create_shell_agent(client, admin_headers)
    operate = bearer(await make_token(Scope.OPERATE))
    made = await client.post(
        "/api/tasks", json={**SHELL_TASK, "agent_id": agent["id"]}, headers=operate
    )
    assert made.status_code == 201, made.text
    held_id = made.json()["id"]
    plain = await client.post(
        "/api/tasks", json={"title": "read the logs", "agent_id": agent["id"]}, headers=operate
    )
    assert plain.status_code == 201, plain.text
    plain_id = plain.json()["id"]

    one = await client.get(f"/api/tasks/{held_id}", headers=operate)
    assert one.status_code == 200, one.text
    assert one.json()["status"] == "queued" and one.json()["approval"] == "pending"
    assert one.json()["active_conversation_id"] is None
    for query in ("", "?status=queued", f"?agent_id={agent['id']}"):
        listed = await client.get(f"/api/tasks{query}", headers=operate)
        assert listed.status_code == 200, listed.text
        items = listed.json()["items"]
        assert by_id(items, held_id)["approval"] == "pending", query
        assert by_id(items, plain_id)["approval"] == "", query  # no shell run: not held

    # the pages read the same field: a badge linking to the approval panel
    await add_user(ctx, "olive", Scope.ADMIN)
    await add_user(ctx, "bob", Scope.OPERATE)
    link = f"/ui/tasks/{held_id}#h-approval"
    async with session_client(app, "olive") as olive:
        for page in ("/ui/tasks", "/ui/tasks?status=queued", f"/ui/tasks/{held_id}"):
            html = (await olive.get(page)).text
            assert BADGE.findall(html) == [(link, "waiting for your approval")], page
        assert BADGE.findall((await olive.get(f"/ui/tasks/{plain_id}")).text) == []
        assert BADGE.findall((await olive.get(f"/ui/agents/{agent['id']}")).text) == [
            (link, "waiting for your approval")
        ]
    async with session_client(app, "bob") as bob:  # an operator cannot approve it
        html = (await bob.get(f"/ui/tasks/{held_id}")).text
        assert BADGE.findall(html) == [(link, "waiting for an admin&#39;s approval")]

    # once approved, nothing waits: the field and the badge say so
    async with session_client(app, "olive") as olive:
        approved = await olive.post(f"/api/tasks/{held_id}/approve", json={"version": 1})
        assert approved.status_code == 200, approved.text
        assert BADGE.findall((await olive.get("/ui/tasks")).text) == []
    after = await client.get(f"/api/tasks/{held_id}", headers=operate)
    assert after.json()["approval"] == "approved"
