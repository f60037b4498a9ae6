"""A rule that would start an agent with shell access needs another admin's approval (F8)."""

from __future__ import annotations

import json

import httpx
from fastapi import FastAPI

from app.core.context import AppContext
from tests.support.api import assert_error_shape
from tests.support.rules import (
    add_admin,
    count,
    create_agent,
    create_rule,
    create_shell_agent,
    security_titles,
    session_client,
    snapshot,
    task_rule,
)


async def test_a_shell_rule_is_created_disabled_and_pending(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    shell = await create_shell_agent(client, admin_headers)
    rule = await create_rule(client, admin_headers, task_rule(shell["id"]))
    assert rule["enabled"] is False and rule["approval"] == "pending"
    assert f"Rule {rule['id']} reaches an agent with shell access" in await security_titles(ctx)
    before = snapshot(ctx)
    enable = await client.patch(
        f"/api/rules/{rule['id']}", json={"version": 1, "enabled": True}, headers=admin_headers
    )
    assert_error_shape(enable, 409, "approval_pending")
    assert snapshot(ctx) == before


async def test_a_shell_tool_alone_counts_as_shell_access(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    agent = await create_agent(client, admin_headers)
    async with ctx.db.write() as conn:
        await conn.execute(
            "UPDATE agents SET allowed_tools = '[\"shell\"]' WHERE id = ?", (agent["id"],)
        )
    rule = await create_rule(client, admin_headers, task_rule(agent["id"]))
    assert rule["approval"] == "pending" and rule["enabled"] is False


async def test_approval_by_a_token_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext, app: FastAPI
) -> None:
    shell = await create_shell_agent(client, admin_headers)
    await add_admin(ctx, "alice")
    async with session_client(app, "alice") as alice:
        rule = await create_rule(alice, {}, task_rule(shell["id"]))
    # A different credential than the creator's, admin scope, but not a person.
    response = await client.post(
        f"/api/rules/{rule['id']}/approve", json={"version": 1}, headers=admin_headers
    )
    assert_error_shape(response, 403, "approval_needs_human")
    row = await ctx.db.fetch_one("SELECT approval FROM rules WHERE id = ?", (rule["id"],))
    assert row is not None and row["approval"] == "pending"
    refused = await ctx.db.fetch_all(
        "SELECT actor FROM audit_log WHERE action = 'rule.approve' AND outcome = 'refused'"
    )
    assert len(refused) == 1 and str(refused[0]["actor"]).startswith("token:")
    assert "Refused: rule.approve" in await security_titles(ctx)


async def test_approval_by_its_creator_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext, app: FastAPI
) -> None:
    shell = await create_shell_agent(client, admin_headers)
    await add_admin(ctx, "alice")
    await add_admin(ctx, "zoe")  # two admins: the two-person mode applies
    async with session_client(app, "alice") as alice:
        rule = await create_rule(alice, {}, task_rule(shell["id"]))
        response = await alice.post(f"/api/rules/{rule['id']}/approve", json={"version": 1})
    assert_error_shape(response, 403, "self_approval")
    row = await ctx.db.fetch_one("SELECT approval, enabled FROM rules WHERE id = ?", (rule["id"],))
    assert row is not None and row["approval"] == "pending" and row["enabled"] == 0
    refused = await ctx.db.fetch_all(
        "SELECT actor FROM audit_log WHERE action = 'rule.approve' AND outcome = 'refused'"
    )
    assert [r["actor"] for r in refused] == ["user:alice"]
    assert "Refused: rule.approve" in await security_titles(ctx)


async def test_another_admin_approves_then_the_rule_can_be_enabled(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext, app: FastAPI
) -> None:
    shell = await create_shell_agent(client, admin_headers)
    rule = await create_rule(client, admin_headers, task_rule(shell["id"]))
    url = f"/api/rules/{rule['id']}"
    await add_admin(ctx, "bob")
    async with session_client(app, "bob") as bob:
        stale = await bob.post(f"{url}/approve", json={"version": 0})
        assert_error_shape(stale, 409, "conflict")
        approved = await bob.post(f"{url}/approve", json={"version": 1})
        assert approved.status_code == 200, approved.text
        again = await bob.post(f"{url}/approve", json={"version": 2})
        assert_error_shape(again, 409, "already_approved")
    body = approved.json()
    assert body["approval"] == "approved" and body["approved_by"] == "user:bob"
    assert body["enabled"] is False  # approval does not enable by itself
    audit = await ctx.db.fetch_all(
        "SELECT actor, summary FROM audit_log WHERE action = 'rule.approve' AND outcome = 'ok'"
    )
    assert [a["actor"] for a in audit] == ["user:bob"]
    assert json.loads(audit[0]["summary"])["shell_agents"] == [shell["id"]]
    assert f"Rule {rule['id']} approved to start a shell agent" in await security_titles(ctx)
    assert await count(ctx, "SELECT count(*) FROM events WHERE type = 'rule.approved'") == 1

    enabled = await client.patch(url, json={"version": 2, "enabled": True}, headers=admin_headers)
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["enabled"] is True and enabled.json()["approval"] == "approved"


async def test_changing_what_an_approved_rule_does_needs_approval_again(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext, app: FastAPI
) -> None:
    shell = await create_shell_agent(client, admin_headers)
    rule = await create_rule(client, admin_headers, task_rule(shell["id"]))
    url = f"/api/rules/{rule['id']}"
    await add_admin(ctx, "bob")
    await add_admin(ctx, "carol")  # two admins: the two-person mode applies
    async with session_client(app, "bob") as bob:
        assert (await bob.post(f"{url}/approve", json={"version": 1})).status_code == 200
        # A rename keeps the approval.
        renamed = await client.patch(
            url, json={"version": 2, "name": "renamed", "enabled": True}, headers=admin_headers
        )
        assert renamed.json()["approval"] == "approved" and renamed.json()["enabled"] is True
        # The approver changes what it does: pending again, disabled, and bob (now an
        # author) may not approve his own change.
        then = task_rule(shell["id"])["then"]
        then[0]["description"] = "Something else entirely."
        changed = await bob.patch(url, json={"version": 3, "then": then})
        assert changed.status_code == 200, changed.text
        assert changed.json()["approval"] == "pending" and changed.json()["enabled"] is False
        assert changed.json()["approved_by"] is None
        own = await bob.post(f"{url}/approve", json={"version": 4})
        assert_error_shape(own, 403, "self_approval")
    async with session_client(app, "carol") as carol:
        assert (await carol.post(f"{url}/approve", json={"version": 4})).status_code == 200


async def test_moving_a_rule_onto_a_shell_agent_needs_approval(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    plain = await create_agent(client, admin_headers)
    shell = await create_shell_agent(client, admin_headers)
    rule = await create_rule(client, admin_headers, task_rule(plain["id"]))
    assert rule["approval"] == "not_needed" and rule["enabled"] is True
    then = task_rule(shell["id"])["then"]
    url = f"/api/rules/{rule['id']}"
    refused = await client.patch(
        url, json={"version": 1, "then": then, "enabled": True}, headers=admin_headers
    )
    assert_error_shape(refused, 409, "approval_pending")
    moved = await client.patch(url, json={"version": 1, "then": then}, headers=admin_headers)
    assert moved.json()["approval"] == "pending" and moved.json()["enabled"] is False
    back = await client.patch(
        url,
        json={"version": 2, "then": task_rule(plain["id"])["then"], "enabled": True},
        headers=admin_headers,
    )
    assert back.json()["approval"] == "not_needed" and back.json()["enabled"] is True


async def test_an_agent_that_gains_shell_is_caught_at_the_next_change(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext, app: FastAPI
) -> None:
    agent = await create_agent(client, admin_headers)
    rule = await create_rule(client, admin_headers, {**task_rule(agent["id"]), "enabled": False})
    # giving an agent a shell takes an admin in a browser session (shell_readers)
    await add_admin(ctx, "carol")
    async with session_client(app, "carol") as carol:
        gained = await carol.patch(
            f"/api/agents/{agent['id']}",
            json={"version": agent["version"], "shell_access": True},
        )
    assert gained.status_code == 200, gained.text
    url = f"/api/rules/{rule['id']}"
    enable = await client.patch(url, json={"version": 1, "enabled": True}, headers=admin_headers)
    assert_error_shape(enable, 409, "approval_pending")
    # It needs approval although it still says "not_needed": another admin can approve it.
    await add_admin(ctx, "bob")
    async with session_client(app, "bob") as bob:
        approved = await bob.post(f"{url}/approve", json={"version": 1})
    assert approved.status_code == 200, approved.text
    assert approved.json()["approval"] == "approved"


async def test_a_rule_without_shell_needs_no_approval(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext, app: FastAPI
) -> None:
    agent = await create_agent(client, admin_headers)
    rule = await create_rule(client, admin_headers, task_rule(agent["id"]))
    await add_admin(ctx, "bob")
    async with session_client(app, "bob") as bob:
        response = await bob.post(f"/api/rules/{rule['id']}/approve", json={"version": 1})
    assert_error_shape(response, 409, "approval_not_needed")
