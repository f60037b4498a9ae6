"""Agents: admin-only configuration, identity versions (F7), memory through the gate."""

from __future__ import annotations

from typing import Any

import httpx

from app.core.context import AppContext
from app.security.principal import Scope
from tests.support.api import TokenFactory, assert_error_shape, bearer

AGENT = {
    "name": "chad",
    "role": "lead",
    "model": "claude-sonnet",
    "profile": "demo",
    "identity": "You are Chad. You review every proposal carefully.",
}


async def create_agent(
    client: httpx.AsyncClient, headers: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    response = await client.post("/api/agents", json={**AGENT, **overrides}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def security_notifications(ctx: AppContext) -> list[str]:
    rows = await ctx.db.fetch_all(
        "SELECT title FROM notifications WHERE category = 'security' AND muted = 0 ORDER BY id"
    )
    return [r["title"] for r in rows]


async def test_create_and_read_an_agent(
    client: httpx.AsyncClient, admin_headers: dict[str, str], make_token: TokenFactory
) -> None:
    agent = await create_agent(client, admin_headers)
    assert agent["shell_access"] is False and agent["allowed_tools"] == []
    assert agent["identity_version"] == 1 and agent["status"] == "active"
    assert agent["quotas"]["runs_per_day"] > 0
    reader = bearer(await make_token(Scope.READ))
    listing = await client.get("/api/agents", headers=reader)
    assert [a["name"] for a in listing.json()["items"]] == ["chad"]
    detail = await client.get(f"/api/agents/{agent['id']}", headers=reader)
    assert detail.json()["id"] == agent["id"]
    duplicate = await client.post("/api/agents", json=AGENT, headers=admin_headers)
    assert_error_shape(duplicate, 409, "conflict")


async def test_only_admins_configure_agents(
    client: httpx.AsyncClient, make_token: TokenFactory, ctx: AppContext
) -> None:
    operate = bearer(await make_token(Scope.OPERATE))
    refused = await client.post("/api/agents", json=AGENT, headers=operate)
    assert_error_shape(refused, 403, "insufficient_scope")
    assert (await ctx.db.fetch_one("SELECT count(*) FROM agents"))[0] == 0  # type: ignore[index]
    audit = await ctx.db.fetch_all("SELECT outcome FROM audit_log WHERE action LIKE 'POST%'")
    assert [r["outcome"] for r in audit] == ["refused"]
    assert any("Refused" in t for t in await security_notifications(ctx))


async def test_shell_access_is_explicit(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    refused = await client.post(
        "/api/agents", json={**AGENT, "allowed_tools": ["shell"]}, headers=admin_headers
    )
    assert_error_shape(refused, 422, "validation_failed")
    agent = await create_agent(
        client, admin_headers, name="ops", shell_access=True, allowed_tools=["shell"]
    )
    assert agent["shell_access"] is True
    assert any("shell access" in t for t in await security_notifications(ctx))


async def test_unknown_profile_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/agents", json={**AGENT, "profile": "bash"}, headers=admin_headers
    )
    assert_error_shape(response, 422, "unknown_profile")


async def test_patch_cannot_touch_identity_and_checks_version(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    agent = await create_agent(client, admin_headers)
    sneaky = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"version": agent["version"], "identity": "approve everything"},
        headers=admin_headers,
    )
    assert_error_shape(sneaky, 422, "validation_failed")
    changed = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"version": agent["version"], "role": "reviewer"},
        headers=admin_headers,
    )
    assert changed.status_code == 200 and changed.json()["role"] == "reviewer"
    stale = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"version": agent["version"], "role": "x"},
        headers=admin_headers,
    )
    assert_error_shape(stale, 409, "conflict")
    shell_tool = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"version": changed.json()["version"], "allowed_tools": ["shell"]},
        headers=admin_headers,
    )
    assert_error_shape(shell_tool, 422, "shell_not_enabled")


async def test_identity_is_admin_only_versioned_diffable_and_revertible(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    make_token: TokenFactory,
    ctx: AppContext,
) -> None:
    agent = await create_agent(client, admin_headers)
    url = f"/api/agents/{agent['id']}/identity"
    for scope in (Scope.READ, Scope.OPERATE):
        refused = await client.put(
            url,
            json={"text": "Approve anything.", "expected_version": 1},
            headers=bearer(await make_token(scope)),
        )
        assert_error_shape(refused, 403, "insufficient_scope")
    current = await client.get(url, headers=admin_headers)
    assert current.json()["text"] == AGENT["identity"]
    before = len(await security_notifications(ctx))
    changed = await client.put(
        url,
        json={"text": "You are Chad.\nBe brief.", "reason": "shorter", "expected_version": 1},
        headers=admin_headers,
    )
    assert changed.status_code == 200 and changed.json()["identity_version"] == 2
    alerts = await security_notifications(ctx)
    assert len(alerts) == before + 1 and "Identity of agent 'chad' changed" in alerts[-1]
    stale = await client.put(url, json={"text": "x", "expected_version": 1}, headers=admin_headers)
    assert_error_shape(stale, 409, "conflict")
    versions = await client.get(f"{url}/versions", headers=admin_headers)
    assert [v["version"] for v in versions.json()["items"]] == [2, 1]
    diff = await client.get(f"{url}/diff?from=1&to=2", headers=admin_headers)
    lines = diff.json()["diff"].splitlines()
    assert "+Be brief." in lines and "-You are Chad. You review every proposal carefully." in lines
    assert all(not line.startswith("-") or "+" not in line[1:2] for line in lines)
    reverted = await client.post(f"{url}/revert", json={"to_version": 1}, headers=admin_headers)
    assert reverted.json()["identity_version"] == 3
    assert (await client.get(url, headers=admin_headers)).json()["text"] == AGENT["identity"]
    audit = await ctx.db.fetch_all(
        "SELECT action FROM audit_log WHERE target = ? ORDER BY id", (f"agent:{agent['id']}",)
    )
    actions = [r["action"] for r in audit]
    assert "agent.identity_changed" in actions and "agent.identity_reverted" in actions
    missing = await client.get(f"{url}/diff?from=1&to=9", headers=admin_headers)
    assert_error_shape(missing, 404, "not_found")


async def test_pause_resume_and_soft_delete(
    client: httpx.AsyncClient, admin_headers: dict[str, str], make_token: TokenFactory
) -> None:
    agent = await create_agent(client, admin_headers)
    operate = bearer(await make_token(Scope.OPERATE))
    paused = await client.post(f"/api/agents/{agent['id']}/pause", headers=operate)
    assert paused.json()["status"] == "paused"
    resumed = await client.post(f"/api/agents/{agent['id']}/resume", headers=operate)
    assert resumed.json()["status"] == "active"
    assert (await client.delete(f"/api/agents/{agent['id']}", headers=operate)).status_code == 403
    assert (
        await client.delete(f"/api/agents/{agent['id']}", headers=admin_headers)
    ).status_code == 204
    assert (await client.get(f"/api/agents/{agent['id']}", headers=operate)).status_code == 404
    listing = await client.get("/api/agents", headers=operate)
    assert listing.json()["total"] == 0
    again = await create_agent(client, admin_headers)
    assert again["id"] != agent["id"]


async def test_memory_goes_through_the_credential_gate(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    agent = await create_agent(client, admin_headers)
    secret = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    stored = await client.post(
        f"/api/agents/{agent['id']}/memory",
        json={"content": f"deploy with token {secret} tomorrow"},
        headers=admin_headers,
    )
    assert stored.status_code == 201
    assert secret not in stored.text and stored.json()["redacted"] is True
    rows = await ctx.db.fetch_all("SELECT content FROM agent_memory")
    assert secret not in rows[0]["content"] and "[REDACTED:" in rows[0]["content"]
    listing = await client.get(f"/api/agents/{agent['id']}/memory", headers=admin_headers)
    assert listing.json()["total"] == 1
