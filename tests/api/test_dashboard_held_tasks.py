"""The dashboard's "Waiting for you" lists shell tasks held for a person's
approval (docs/security-model.md, "A shell needs a person"; app/tasks/approval.py),
beside the questions, reviews and missions that wait: the owner's first page
says what only they can unblock. Real SQLite, the real app.
"""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI

from app.core.context import AppContext
from app.security.principal import Scope
from tests.support.api import TokenFactory, bearer
from tests.support.rules import create_shell_agent
from tests.support.tasks import add_user, session_client

HELD = re.compile(r'<li data-waiting="approval"><a href="([^"]+)">([^<]+)</a>: ([^<]+?)\s*<')
HEADING = re.compile(r'<h2 id="h-waiting">Waiting for you \((\d+)\)</h2>')


async def test_held_shell_tasks_wait_for_the_owner_on_the_dashboard(
    app: FastAPI,
    client: httpx.AsyncClient,
    ctx: AppContext,
    admin_headers: dict[str, str],
    make_token: TokenFactory,
) -> None:
    agent = await create_shell_agent(client, admin_headers)
    operate = bearer(await make_token(Scope.OPERATE))
    await add_user(ctx, "olive", Scope.ADMIN)
    await add_user(ctx, "bob", Scope.OPERATE)
    async with session_client(app, "olive") as olive:
        assert HEADING.search((await olive.get("/ui/")).text) is None  # nothing waits

    held = []
    for title in ("prune the logs", "rotate the keys"):
        made = await client.post(
            "/api/tasks",
            json={"title": title, "agent_id": agent["id"], "needs_shell": True},
            headers=operate,
        )
        assert made.status_code == 201, made.text
        assert made.json()["approval"] == "pending"
        held.append(made.json()["id"])
    plain = await client.post(
        "/api/tasks", json={"title": "read the logs", "agent_id": agent["id"]}, headers=operate
    )
    assert plain.status_code == 201, plain.text

    async with session_client(app, "olive") as olive:
        html = (await olive.get("/ui/")).text
        assert HELD.findall(html) == [
            (
                f"/ui/tasks/{held[1]}#h-approval",
                "A shell task waits for your approval",
                "rotate the keys",
            ),
            (
                f"/ui/tasks/{held[0]}#h-approval",
                "A shell task waits for your approval",
                "prune the logs",
            ),
        ]
        heading = HEADING.search(html)
        assert heading is not None and heading.group(1) == "2"
    async with session_client(app, "bob") as bob:  # an operator cannot approve
        titles = [text for _, text, _ in HELD.findall((await bob.get("/ui/")).text)]
        assert titles == ["A shell task waits for an admin&#39;s approval"] * 2

    # approved, or cancelled: it no longer waits
    async with session_client(app, "olive") as olive:
        approved = await olive.post(f"/api/tasks/{held[0]}/approve", json={"version": 1})
        assert approved.status_code == 200, approved.text
        cancelled = await olive.post(f"/api/tasks/{held[1]}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        html = (await olive.get("/ui/")).text
        assert HELD.findall(html) == []
        assert HEADING.search(html) is None
