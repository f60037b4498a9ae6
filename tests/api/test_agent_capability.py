"""An agent's capability through the API: the profile counts, and every change to
what an agent can do is admin-only, recorded and announced (app/capability)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.context import AppContext
from app.security.principal import Scope
from tests.support.api import TokenFactory, assert_error_shape, bearer
from tests.support.rules import create_agent, create_rule, security_titles, task_rule
from tests.support.sessions import admin_session

PROFILES = """
[profiles.demo]
runtime = "claude-code"
argv = ["{python}", "-I", "-m", "app.runner.demo_agent", "--model", "{model}"]
price_fallback = "demo"

[profiles.opaque]
# a program Mission Control cannot restrict: it always runs commands
argv = ["/usr/local/bin/some-agent"]

[profiles.readonly]
runtime = "claude-code"
commands = "never"
argv = ["claude", "--model", "{model}"]
"""


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    folder = tmp_path / "profiles"
    folder.mkdir(mode=0o755)
    path = folder / "profiles.toml"
    path.write_text(PROFILES)
    path.chmod(0o644)
    return {"profiles_path": path}


async def test_a_rule_to_an_agent_whose_profile_runs_commands_needs_approval(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    """The reproduced hole: shell_access false, but the profile runs commands."""
    agent = await create_agent(client, admin_headers, profile="opaque", shell_access=False)
    assert agent["capability"]["shell"] is True
    assert "always runs commands" in agent["capability"]["basis"]
    rule = await create_rule(client, admin_headers, task_rule(agent["id"]))
    assert rule["approval"] == "pending" and rule["enabled"] is False
    titles = await security_titles(ctx)
    assert any("created with shell access" in t for t in titles)
    assert any("reaches an agent with shell access" in t for t in titles)


async def test_a_profile_that_never_runs_commands_makes_no_shell_agent(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    agent = await create_agent(
        client, admin_headers, profile="readonly", shell_access=True, allowed_tools=["shell"]
    )
    assert agent["capability"]["shell"] is False
    rule = await create_rule(client, admin_headers, task_rule(agent["id"]))
    assert rule["approval"] == "not_needed"


async def test_moving_an_agent_to_a_commanding_profile_is_announced(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    agent = await create_agent(client, admin_headers, profile="demo")
    assert agent["capability"]["badge"] == "read-only"
    before = await security_titles(ctx)
    # a token may not make an agent able to run commands: 403, audited, announced
    token = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"version": agent["version"], "profile": "opaque"},
        headers=admin_headers,
    )
    assert_error_shape(token, 403, "session_required")
    assert "sign in to the web ui as an admin" in token.json()["error"]["message"].lower()
    refused = (await security_titles(ctx))[len(before) :]
    assert len(refused) == 1, refused
    before = await security_titles(ctx)
    csrf = await admin_session(client, ctx)  # an admin in a browser session may
    response = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"version": agent["version"], "profile": "opaque"},
        headers=csrf,
    )
    assert response.status_code == 200, response.text
    assert response.json()["capability"]["shell"] is True
    new = (await security_titles(ctx))[len(before) :]
    assert new == [f"Shell access granted to agent '{agent['name']}'"]
    audit = await ctx.db.fetch_all(
        "SELECT summary FROM audit_log WHERE action = 'agent.capability_changed'"
    )
    (entry,) = [json.loads(r["summary"]) for r in audit]
    assert entry["before"]["shell"] is False and entry["after"]["shell"] is True


async def test_a_change_of_tools_is_announced(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    agent = await create_agent(client, admin_headers, profile="demo")
    response = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"version": agent["version"], "allowed_tools": ["read_files", "write_files"]},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["capability"]["badge"] == "edits files"
    titles = await security_titles(ctx)
    assert f"Capability of agent '{agent['name']}' changed" in titles


async def test_a_change_of_role_alone_is_not_a_capability_change(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    agent = await create_agent(client, admin_headers, profile="demo")
    before = await security_titles(ctx)
    response = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"version": agent["version"], "role": "reviewer"},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    assert await security_titles(ctx) == before


async def test_an_operator_cannot_change_what_an_agent_can_do(
    client: httpx.AsyncClient, admin_headers: dict[str, str], make_token: TokenFactory
) -> None:
    agent = await create_agent(client, admin_headers, profile="demo")
    operate = bearer(await make_token(Scope.OPERATE))
    response = await client.patch(
        f"/api/agents/{agent['id']}",
        json={"version": agent["version"], "profile": "opaque"},
        headers=operate,
    )
    assert_error_shape(response, 403)


async def test_pre_flight_refuses_a_shell_task_for_a_profile_without_commands(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    agent = await create_agent(
        client, admin_headers, profile="readonly", shell_access=True, allowed_tools=["shell"]
    )
    response = await client.post(
        "/api/tasks",
        json={"title": "run it", "agent_id": agent["id"], "needs_shell": True},
        headers=admin_headers,
    )
    assert response.status_code == 422, response.text
    assert "never runs commands" in response.text
