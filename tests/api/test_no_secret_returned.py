"""No endpoint ever returns a stored secret (F26): every GET route of the app is
called with an admin token and its body is searched for stored hashes."""

from __future__ import annotations

import re
import sqlite3

import httpx
from fastapi import FastAPI

from app.core.context import AppContext
from app.core.middleware import STREAMING_PREFIXES
from app.main import route_table
from tests.support.api import login


async def test_no_stored_secret_in_any_get_response(
    app: FastAPI,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    admin_user: str,
    ctx: AppContext,
) -> None:
    await login(client, admin_user)
    client.cookies.clear()
    conn = sqlite3.connect(ctx.settings.database_path)
    secrets = [r[0] for r in conn.execute("SELECT token_hash FROM api_tokens")]
    secrets += [r[0] for r in conn.execute("SELECT password_hash FROM users")]
    secrets += [r[0] for r in conn.execute("SELECT session_hash FROM sessions")]
    secrets += [r[0] for r in conn.execute("SELECT csrf_token FROM sessions")]
    secrets.append(ctx.server_key.decode())
    assert len(secrets) >= 5
    checked = 0
    for method, path in route_table(app):
        if method != "GET" or path.startswith(STREAMING_PREFIXES):
            continue
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        response = await client.get(concrete, headers=admin_headers)
        checked += 1
        for secret in secrets:
            assert secret not in response.text, f"{path} returned a stored secret"
    assert checked >= 8
