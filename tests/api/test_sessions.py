"""UI sessions: cookies, CSRF, timeouts, rotation, throttling (F4, F30)."""

from __future__ import annotations

import httpx
import pytest

from app.core.context import AppContext
from tests.support.api import ADMIN_PASSWORD, assert_error_shape, login


async def test_login_sets_a_strict_httponly_cookie(
    client: httpx.AsyncClient, admin_user: str
) -> None:
    response = await login(client, admin_user)
    assert response.status_code == 200
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "secure" not in cookie  # plain http on loopback
    assert "mc_session=" in cookie
    assert response.json()["csrf_token"]
    assert (await client.get("/api/health")).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"trusted_proxies": ["127.0.0.1/32"]}])
async def test_cookie_is_secure_behind_a_tls_proxy(
    client: httpx.AsyncClient, admin_user: str
) -> None:
    response = await client.post(
        "/api/auth/login",
        json={"username": admin_user, "password": ADMIN_PASSWORD},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "secure" in response.headers["set-cookie"].lower()
    assert "strict-transport-security" in response.headers


async def test_forwarded_proto_from_an_untrusted_peer_is_ignored(
    client: httpx.AsyncClient, admin_user: str
) -> None:
    response = await client.post(
        "/api/auth/login",
        json={"username": admin_user, "password": ADMIN_PASSWORD},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.9.9.9"},
    )
    assert "secure" not in response.headers["set-cookie"].lower()


async def test_cookie_state_change_needs_the_csrf_token(
    client: httpx.AsyncClient, admin_user: str
) -> None:
    csrf = (await login(client, admin_user)).json()["csrf_token"]
    refused = await client.post("/api/tokens", json={"name": "x", "scope": "read"})
    assert_error_shape(refused, 403, "csrf_failed")
    wrong = await client.post(
        "/api/tokens", json={"name": "x", "scope": "read"}, headers={"X-CSRF-Token": "nope"}
    )
    assert_error_shape(wrong, 403, "csrf_failed")
    ok = await client.post(
        "/api/tokens", json={"name": "x", "scope": "read"}, headers={"X-CSRF-Token": csrf}
    )
    assert ok.status_code == 201
    same_origin = await client.post(
        "/api/tokens",
        json={"name": "y", "scope": "read"},
        headers={"Origin": "http://testserver", "Referer": "http://testserver/ui"},
    )
    assert same_origin.status_code == 403


async def test_login_rotates_the_session(client: httpx.AsyncClient, admin_user: str) -> None:
    await login(client, admin_user)
    first = client.cookies.get("mc_session")
    await login(client, admin_user)
    second = client.cookies.get("mc_session")
    assert first and second and first != second
    client.cookies.set("mc_session", first)
    assert (await client.get("/api/health")).status_code == 401


async def test_logout_ends_the_session(client: httpx.AsyncClient, admin_user: str) -> None:
    csrf = (await login(client, admin_user)).json()["csrf_token"]
    cookie = client.cookies.get("mc_session")
    response = await client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 204
    assert cookie
    client.cookies.set("mc_session", cookie)
    assert (await client.get("/api/health")).status_code == 401


async def test_idle_and_absolute_timeouts(
    client: httpx.AsyncClient, admin_user: str, ctx: AppContext
) -> None:
    await login(client, admin_user)
    assert (await client.get("/api/health")).status_code == 200
    ctx.usage._sessions.clear()  # as after a flush
    async with ctx.db.write() as conn:
        await conn.execute("UPDATE sessions SET idle_expires_at = '2000-01-01T00:00:00.000000Z'")
    assert (await client.get("/api/health")).status_code == 401

    await login(client, admin_user)
    async with ctx.db.write() as conn:
        await conn.execute(
            "UPDATE sessions SET absolute_expires_at = '2000-01-01T00:00:00.000000Z'"
        )
    assert (await client.get("/api/health")).status_code == 401


async def test_password_change_ends_every_session(
    client: httpx.AsyncClient, admin_user: str
) -> None:
    csrf = (await login(client, admin_user)).json()["csrf_token"]
    wrong = await client.post(
        "/api/auth/password",
        json={"current_password": "wrong", "new_password": "another long password"},
        headers={"X-CSRF-Token": csrf},
    )
    assert_error_shape(wrong, 403, "wrong_password")
    changed = await client.post(
        "/api/auth/password",
        json={"current_password": ADMIN_PASSWORD, "new_password": "another long password"},
        headers={"X-CSRF-Token": csrf},
    )
    assert changed.status_code == 204
    assert (await client.get("/api/health")).status_code == 401
    assert (await login(client, admin_user)).status_code == 401
    assert (await login(client, admin_user, "another long password")).status_code == 200


async def test_disabled_user_cannot_log_in(
    client: httpx.AsyncClient, admin_user: str, admin_headers: dict[str, str]
) -> None:
    created = await client.post(
        "/api/users",
        json={"username": "dave", "password": "dave's long password", "role": "read"},
        headers=admin_headers,
    )
    await client.patch(
        f"/api/users/{created.json()['id']}", json={"disabled": True}, headers=admin_headers
    )
    assert (await login(client, "dave", "dave's long password")).status_code == 401


@pytest.mark.parametrize("settings_overrides", [{"login_failures_before_lockout": 3}])
async def test_login_lockout_per_user(
    client: httpx.AsyncClient, admin_user: str, ctx: AppContext
) -> None:
    for _ in range(3):
        assert_error_shape(await login(client, admin_user, "wrong"), 401, "invalid_login")
    locked = await login(client, admin_user)  # even the right password
    assert_error_shape(locked, 429, "login_locked")
    assert int(locked.headers["retry-after"]) >= 1
    rows = await ctx.db.fetch_all("SELECT action FROM audit_log ORDER BY id")
    actions = [r["action"] for r in rows]
    assert actions.count("auth.login_failed") == 3
    assert "auth.login_locked" in actions


@pytest.mark.parametrize("settings_overrides", [{"login_rate_per_minute": 3}])
async def test_login_endpoint_is_rate_limited_per_client(
    client: httpx.AsyncClient,
) -> None:
    statuses = []
    for i in range(5):
        response = await login(client, f"nobody{i}", "x")
        statuses.append(response.status_code)
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3] == 429


async def test_unknown_and_known_users_get_the_same_answer(
    client: httpx.AsyncClient, admin_user: str
) -> None:
    unknown = await login(client, "mallory", "whatever")
    known = await login(client, admin_user, "whatever")
    assert unknown.status_code == known.status_code == 401
    assert unknown.json() == known.json()
