"""Reading the audit log: admin only, newest first, filters that match literally."""

from __future__ import annotations

import httpx

from app.core.context import AppContext
from app.security import audit
from tests.support.api import login


async def _plant(ctx: AppContext) -> None:
    for actor, action in [
        ("user:ann", "agent.identity_changed"),
        ("user:ann", "agentXidentity"),  # `_` and `.` must not act as wildcards
        ("user:bob", "agent.created"),
        ("user:bob", "rule.created"),
        ("user:ann", "100%_done"),
    ]:
        await audit.record(ctx.db, actor=actor, action=action)


async def test_filters_by_action_prefix_and_actor(
    client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    await _plant(ctx)

    async def actions(**params: str) -> tuple[list[str], int]:
        response = await client.get("/api/audit", params=params, headers=admin_headers)
        assert response.status_code == 200, response.text
        body = response.json()
        return [item["action"] for item in body["items"]], body["total"]

    assert await actions(action="agent.", actor="user:ann") == (["agent.identity_changed"], 1)
    assert await actions(action="agent.", actor="user:bob") == (["agent.created"], 1)
    # newest first
    assert (await actions(action="agent."))[0][:2] == ["agent.created", "agent.identity_changed"]
    assert await actions(action="100%_") == (["100%_done"], 1)
    assert await actions(action="100%x") == ([], 0)
    assert await actions(action="%") == ([], 0)
    everything, total = await actions()
    assert total >= 5 and len(everything) == min(total, 50)


async def test_the_ui_page_uses_the_same_filters(
    client: httpx.AsyncClient, ctx: AppContext, admin_user: str
) -> None:
    await _plant(ctx)
    assert (await login(client, admin_user)).status_code == 200
    page = await client.get("/ui/audit", params={"action": "rule."})
    assert page.status_code == 200
    assert "rule.created" in page.text and "agent.created" not in page.text
