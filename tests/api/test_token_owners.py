"""Every token has an owning human, and the two-person checks compare humans.

The audit found the mission two-person rule bypassed with a token: a person
proposed with "their" CLI-made token (``created_by`` = ``cli:root``) and
approved in their own browser session. Now a token acts for its owner
(``missionctl token create --owner``, inherited through the API), and
approvals compare people (``app/auth/owners.py``).
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from app.auth import service as auth_service
from app.auth import store as auth_store
from app.core.context import AppContext
from app.security.principal import Scope
from tests.support.api import TOKEN_OWNER, TokenFactory, assert_error_shape, bearer
from tests.support.rules import create_rule, create_shell_agent, task_rule
from tests.support.tasks import add_user, make_agent, mission_body, session_client


async def cli_token(ctx: AppContext, owner: str | None, scope: Scope = Scope.OPERATE) -> str:
    """A token as ``missionctl token create --owner`` makes it (or a legacy one, owner None)."""
    owner_id = None
    if owner is not None:
        row = await auth_store.user_by_name(ctx.db, owner)
        assert row is not None
        owner_id = int(row["id"])
    created = await auth_service.create_token(
        ctx.db,
        ctx.server_key,
        name=f"cli-{owner}",
        scope=scope,
        expires_days=None,
        actor="cli:root",
        client="cli",
        owner_user_id=owner_id,
    )
    return created.token


async def propose(client: httpx.AsyncClient, headers: dict[str, str], agent_id: int) -> int:
    response = await client.post("/api/missions", json=mission_body([agent_id]), headers=headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def test_api_tokens_inherit_their_creators_human(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, make_token: TokenFactory
) -> None:
    await add_user(ctx, "dave", Scope.ADMIN)
    async with session_client(app, "dave") as dave:
        made = await dave.post("/api/tokens", json={"name": "bot", "scope": "admin"})
    assert made.status_code == 201, made.text
    assert made.json()["owner"] == "dave"
    # a token made by that token acts for dave too
    child = await client.post(
        "/api/tokens",
        json={"name": "child", "scope": "read"},
        headers=bearer(made.json()["token"]),
    )
    assert child.status_code == 201, child.text
    assert child.json()["owner"] == "dave"
    listing = await client.get("/api/tokens", headers=bearer(await make_token(Scope.ADMIN)))
    owners = {t["name"]: t["owner"] for t in listing.json()["items"]}
    assert owners["bot"] == "dave" and owners["child"] == "dave"
    assert owners["test-admin"] == TOKEN_OWNER


async def test_a_token_without_owner_cannot_make_tokens(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    legacy = await cli_token(ctx, None, Scope.ADMIN)
    response = await client.post(
        "/api/tokens", json={"name": "x", "scope": "read"}, headers=bearer(legacy)
    )
    assert_error_shape(response, 403, "owner_required")
    assert "--owner" in response.json()["error"]["message"]


async def test_proposing_with_ones_own_cli_token_then_approving_is_refused(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    agent: dict[str, Any] = await make_agent(client, admin_headers)
    await add_user(ctx, "bob")
    await add_user(ctx, "carol")
    mission = await propose(client, bearer(await cli_token(ctx, "bob")), agent["id"])
    async with session_client(app, "bob") as bob:
        own = await bob.post(f"/api/missions/{mission}/approve", json={})
    assert_error_shape(own, 403, "self_approval")
    async with session_client(app, "carol") as carol:
        other = await carol.post(f"/api/missions/{mission}/approve", json={})
    assert other.status_code == 200, other.text


async def test_a_proposal_by_an_ownerless_token_cannot_be_approved(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    agent: dict[str, Any] = await make_agent(client, admin_headers)
    await add_user(ctx, "carol")
    mission = await propose(client, bearer(await cli_token(ctx, None)), agent["id"])
    async with session_client(app, "carol") as carol:
        refused = await carol.post(f"/api/missions/{mission}/approve", json={})
    assert_error_shape(refused, 403, "proposer_unknown")


async def test_a_rule_written_with_ones_own_token_is_not_self_approved(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    shell = await create_shell_agent(client, admin_headers)
    await add_user(ctx, "alice", Scope.ADMIN)
    await add_user(ctx, "erin", Scope.ADMIN)
    alices = bearer(await cli_token(ctx, "alice", Scope.ADMIN))
    rule = await create_rule(client, alices, task_rule(shell["id"]))
    async with session_client(app, "alice") as alice:
        own = await alice.post(f"/api/rules/{rule['id']}/approve", json={"version": 1})
    assert_error_shape(own, 403, "self_approval")
    async with session_client(app, "erin") as erin:
        other = await erin.post(f"/api/rules/{rule['id']}/approve", json={"version": 1})
    assert other.status_code == 200, other.text


async def test_a_rule_written_with_an_ownerless_token_cannot_be_approved(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    shell = await create_shell_agent(client, admin_headers)
    await add_user(ctx, "erin", Scope.ADMIN)
    rule = await create_rule(
        client, bearer(await cli_token(ctx, None, Scope.ADMIN)), task_rule(shell["id"])
    )
    async with session_client(app, "erin") as erin:
        refused = await erin.post(f"/api/rules/{rule['id']}/approve", json={"version": 1})
    assert_error_shape(refused, 403, "author_unknown")
