"""An admin logged in as a person (a session cookie on the client and its CSRF
header), for the actions a token may not take (app/agents/shell_readers.py)."""

from __future__ import annotations

import httpx

from app.auth import service
from app.core.context import AppContext
from app.security.principal import Scope

PASSWORD = "correct horse battery staple"


async def admin_session(
    client: httpx.AsyncClient, ctx: AppContext, username: str = "owner"
) -> dict[str, str]:
    """Create ``username`` (admin) and log in on ``client``: the headers a session
    request needs. Requests with an ``Authorization`` header still use the token."""
    await service.create_user(
        ctx.db,
        username=username,
        password=PASSWORD,
        role=Scope.ADMIN,
        actor="test",
        client="test",
    )
    login = await client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"X-CSRF-Token": str(login.json()["csrf_token"])}
