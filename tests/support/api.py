"""Helpers of the API tests: the test password, tokens and error-shape checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from app.access.caller import Caller
from app.auth import service
from app.core.context import AppContext
from app.security.principal import Principal, Scope

ADMIN_PASSWORD = "correct horse battery staple"

TokenFactory = Callable[[Scope], Awaitable[str]]

#: the human every test token acts for (tokens have an owning user)
TOKEN_OWNER = "token-owner"


async def token_owner_id(ctx: AppContext) -> int:
    from app.auth import store

    row = await store.user_by_name(ctx.db, TOKEN_OWNER)
    if row is None:
        created = await service.create_user(
            ctx.db,
            username=TOKEN_OWNER,
            password=ADMIN_PASSWORD,
            role=Scope.READ,  # a person; counts as no admin (the last-admin rule)
            actor="test",
            client="test",
        )
        return created.id
    return int(row["id"])


def caller(who: Principal | str, client: str = "t", *, scope: Scope = Scope.ADMIN) -> Caller:
    """A ``Caller`` for a service called directly: a principal, or the name of a person
    logged in (a session, actor ``user:<name>``) with ``scope``."""
    if isinstance(who, str):
        who = Principal(kind="session", scope=scope, name=who, user_id=1, session_id=1)
    return Caller(who, client)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(
    client: httpx.AsyncClient, username: str, password: str = ADMIN_PASSWORD
) -> httpx.Response:
    return await client.post("/api/auth/login", json={"username": username, "password": password})


def assert_error_shape(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    assert "Traceback" not in response.text
