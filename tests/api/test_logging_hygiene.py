"""Log lines never carry a token, a cookie, a password or a query string."""

from __future__ import annotations

import logging

import httpx
import pytest

from app.core.logging import JsonFormatter, quiet_noisy_loggers
from app.security.principal import Scope
from tests.support.api import ADMIN_PASSWORD, TokenFactory, bearer, login


async def test_no_credential_reaches_the_log(
    client: httpx.AsyncClient,
    make_token: TokenFactory,
    admin_user: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = await make_token(Scope.ADMIN)
    quiet_noisy_loggers()  # as configure_logging does in the service
    caplog.set_level(logging.DEBUG)
    await client.get("/api/health", headers=bearer(token))
    await client.get(f"/api/health?token={token}&note=visible-query")
    await client.get("/api/health", headers=bearer(token[:-1] + "x"))
    await login(client, admin_user)
    await login(client, admin_user, "wrong-password-guess")
    cookie = client.cookies.get("mc_session")
    await client.get("/api/health")
    formatter = JsonFormatter()
    # httpx is the test's own client, not the service: its lines are not the service's log.
    lines = [formatter.format(r) for r in caplog.records if not r.name.startswith("httpx")]
    text = "\n".join(lines)
    assert lines, "the access log wrote nothing"
    assert '"path": "/api/health"' in text
    for secret in (token, token.split("_", 2)[2], ADMIN_PASSWORD, "wrong-password-guess", cookie):
        assert secret and secret not in text
    assert "visible-query" not in text
