"""The ``Caller`` dependencies (app/access/caller.py) refuse exactly what the matching
``*Access`` aliases refuse, and carry the client address the edge middleware
computed (X-Forwarded-For counts only from a trusted proxy)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.access.caller import AdminCaller, AuthenticatedCaller, OperateCaller, ReadCaller
from app.access.dependencies import AdminAccess, Authenticated, OperateAccess, ReadAccess
from app.core.context import AppContext
from app.security.principal import Principal, Scope
from tests.support.api import TokenFactory, bearer

SCOPES = ("authenticated", "read", "operate", "admin")


def _add_probe_routes(app: FastAPI) -> None:
    """For each scope, a route taking the ``*Access`` alias and one taking the ``*Caller``."""

    def answer(principal: Principal, client: str = "") -> dict[str, Any]:
        return {"actor": principal.actor, "client": client}

    async def access_authenticated(principal: Authenticated) -> dict[str, Any]:
        return answer(principal)

    async def access_read(principal: ReadAccess) -> dict[str, Any]:
        return answer(principal)

    async def access_operate(principal: OperateAccess) -> dict[str, Any]:
        return answer(principal)

    async def access_admin(principal: AdminAccess) -> dict[str, Any]:
        return answer(principal)

    async def caller_authenticated(caller: AuthenticatedCaller) -> dict[str, Any]:
        return answer(caller.principal, caller.client)

    async def caller_read(caller: ReadCaller) -> dict[str, Any]:
        return answer(caller.principal, caller.client)

    async def caller_operate(caller: OperateCaller) -> dict[str, Any]:
        return answer(caller.principal, caller.client)

    async def caller_admin(caller: AdminCaller) -> dict[str, Any]:
        assert caller.actor == caller.principal.actor
        return answer(caller.principal, caller.client)

    async def both_operate(_: OperateAccess, caller: OperateCaller) -> dict[str, Any]:
        return answer(caller.principal, caller.client)

    for scope in SCOPES:
        app.add_api_route(f"/probe/access/{scope}", locals()[f"access_{scope}"], methods=["POST"])
        app.add_api_route(f"/probe/caller/{scope}", locals()[f"caller_{scope}"], methods=["POST"])
    app.add_api_route("/probe/both/operate", both_operate, methods=["POST"])


def _error(response: httpx.Response) -> tuple[int, str | None]:
    if response.status_code == 200:
        return 200, None
    return response.status_code, response.json()["error"]["code"]


async def test_a_caller_is_refused_exactly_where_the_access_alias_is(
    app: FastAPI, client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    _add_probe_routes(app)
    credentials: dict[str, dict[str, str]] = {"none": {}, "garbage": bearer("mc_nonsense")}
    for scope in Scope:
        credentials[scope.value] = bearer(await make_token(scope))
    seen: set[tuple[int, str | None]] = set()
    for needed in SCOPES:
        for name, headers in credentials.items():
            access = await client.post(f"/probe/access/{needed}", headers=headers)
            caller = await client.post(f"/probe/caller/{needed}", headers=headers)
            assert _error(caller) == _error(access), (needed, name, caller.text)
            seen.add(_error(caller))
    # the cases the comparison covered: allowed, no or a bad credential, too low a scope
    assert seen == {(200, None), (401, "unauthenticated"), (403, "insufficient_scope")}
    read = credentials[Scope.READ.value]
    assert _error(await client.post("/probe/caller/operate", headers=read)) == (
        403,
        "insufficient_scope",
    )
    assert _error(await client.post("/probe/caller/operate")) == (401, "unauthenticated")


async def test_one_scope_check_for_a_route_naming_both_aliases(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, make_token: TokenFactory
) -> None:
    """The Caller reuses the alias's own dependency: FastAPI runs it once, so a
    refusal is recorded once."""
    _add_probe_routes(app)
    read = bearer(await make_token(Scope.READ))
    response = await client.post("/probe/both/operate", headers=read)
    assert _error(response) == (403, "insufficient_scope")
    rows = await ctx.db.fetch_all(
        "SELECT outcome FROM audit_log WHERE action = ?", ("POST /probe/both/operate",)
    )
    assert [row["outcome"] for row in rows] == ["refused"]


async def test_the_caller_carries_the_peer_address_not_a_forwarded_one(
    app: FastAPI, client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    _add_probe_routes(app)
    headers = {**bearer(await make_token(Scope.OPERATE)), "X-Forwarded-For": "10.9.9.9"}
    for scope in ("authenticated", "read", "operate"):
        body = (await client.post(f"/probe/caller/{scope}", headers=headers)).json()
        assert body["client"] == "127.0.0.1", body
        assert body["actor"].startswith("token:")


@pytest.mark.parametrize("settings_overrides", [{"trusted_proxies": ["127.0.0.1/32"]}])
async def test_the_caller_carries_the_forwarded_address_from_a_trusted_proxy(
    app: FastAPI, client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    _add_probe_routes(app)
    headers = {**bearer(await make_token(Scope.ADMIN)), "X-Forwarded-For": "10.9.9.9"}
    body = (await client.post("/probe/caller/admin", headers=headers)).json()
    assert body["client"] == "10.9.9.9", body
