"""API tokens (shown once, hashed, revocable, expiring) and scopes (F25, F26)."""

from __future__ import annotations

import sqlite3

import httpx

from app.core.context import AppContext
from app.security.principal import Scope
from tests.support.api import TOKEN_OWNER, TokenFactory, assert_error_shape, bearer


async def test_token_is_shown_once_and_stored_only_as_hash(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    created = await client.post(
        "/api/tokens", json={"name": "laptop", "scope": "read"}, headers=admin_headers
    )
    assert created.status_code == 201
    token = created.json()["token"]
    public_id = created.json()["public_id"]
    assert token.startswith(f"mc_{public_id}_")
    assert len(token) >= 43 + 14
    listing = await client.get("/api/tokens", headers=admin_headers)
    assert token not in listing.text
    assert "hash" not in listing.text
    assert public_id in listing.text
    raw = sqlite3.connect(ctx.settings.database_path).execute("SELECT * FROM api_tokens")
    dump = repr(raw.fetchall())
    assert token not in dump
    assert token.split("_", 2)[2] not in dump
    assert (await client.get("/api/health", headers=bearer(token))).status_code == 200


async def test_revoked_token_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], make_token: TokenFactory
) -> None:
    token = await make_token(Scope.READ)
    assert (await client.get("/api/health", headers=bearer(token))).status_code == 200
    public_id = token.split("_")[1]
    revoked = await client.delete(f"/api/tokens/{public_id}", headers=admin_headers)
    assert revoked.status_code == 204
    assert_error_shape(await client.get("/api/health", headers=bearer(token)), 401)
    again = await client.delete(f"/api/tokens/{public_id}", headers=admin_headers)
    assert_error_shape(again, 404, "not_found")


async def test_expired_token_is_refused(client: httpx.AsyncClient, ctx: AppContext) -> None:
    from app.auth import service

    created = await service.create_token(
        ctx.db, ctx.server_key, name="old", scope=Scope.READ, expires_days=1, actor="t", client=""
    )
    assert (await client.get("/api/health", headers=bearer(created.token))).status_code == 200
    async with ctx.db.write() as conn:
        await conn.execute(
            "UPDATE api_tokens SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE public_id = ?",
            (created.public_id,),
        )
    response = await client.get("/api/health", headers=bearer(created.token))
    assert_error_shape(response, 401, "unauthenticated")


async def test_token_from_another_key_is_refused(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    token = await make_token(Scope.ADMIN)
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert (await client.get("/api/health", headers=bearer(tampered))).status_code == 401


async def test_scopes_are_enforced_on_admin_routes(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    read = bearer(await make_token(Scope.READ))
    operate = bearer(await make_token(Scope.OPERATE))
    admin = bearer(await make_token(Scope.ADMIN))
    for headers in (read, operate):
        for method, path in (
            ("GET", "/api/tokens"),
            ("POST", "/api/tokens"),
            ("GET", "/api/users"),
            ("GET", "/api/audit"),
            ("GET", "/api/audit/verify"),
        ):
            response = await client.request(
                method, path, headers=headers, json={"name": "x", "scope": "admin"}
            )
            assert_error_shape(response, 403, "insufficient_scope")
    assert (await client.get("/api/health", headers=read)).status_code == 200
    assert (await client.get("/api/tokens", headers=admin)).status_code == 200


async def test_read_token_cannot_mint_an_admin_token(
    client: httpx.AsyncClient, make_token: TokenFactory, ctx: AppContext
) -> None:
    read = bearer(await make_token(Scope.READ))
    before = await ctx.db.fetch_one("SELECT count(*) FROM api_tokens")
    response = await client.post(
        "/api/tokens", json={"name": "evil", "scope": "admin"}, headers=read
    )
    assert response.status_code == 403
    after = await ctx.db.fetch_one("SELECT count(*) FROM api_tokens")
    assert before is not None and after is not None and before[0] == after[0]


async def test_token_in_query_string_is_refused_even_when_valid(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    token = await make_token(Scope.ADMIN)
    for name in ("token", "access_token", "api_key", "key", "secret", "password", "TOKEN"):
        response = await client.get(f"/api/health?{name}={token}")
        assert_error_shape(response, 400, "credential_in_url")
        assert token not in response.text
    response = await client.get(f"/api/health?token={token}", headers=bearer(token))
    assert response.status_code == 400


async def test_users_have_roles_and_last_admin_is_kept(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    password = "a long enough password"
    created = await client.post(
        "/api/users",
        json={"username": "bob", "password": password, "role": "operate"},
        headers=admin_headers,
    )
    assert created.status_code == 201
    assert password not in created.text and "hash" not in created.text
    duplicate = await client.post(
        "/api/users", json={"username": "BOB", "password": password}, headers=admin_headers
    )
    assert_error_shape(duplicate, 409, "conflict")
    weak = await client.post(
        "/api/users", json={"username": "carol", "password": "short"}, headers=admin_headers
    )
    assert_error_shape(weak, 422, "weak_password")
    bob_id = created.json()["id"]
    promoted = await client.patch(
        f"/api/users/{bob_id}", json={"role": "admin"}, headers=admin_headers
    )
    assert promoted.json()["role"] == "admin"
    last = await client.patch(f"/api/users/{bob_id}", json={"role": "read"}, headers=admin_headers)
    assert_error_shape(last, 409, "last_admin")
    disable = await client.patch(
        f"/api/users/{bob_id}", json={"disabled": True}, headers=admin_headers
    )
    assert_error_shape(disable, 409, "last_admin")
    row = await ctx.db.fetch_one("SELECT role, disabled FROM users WHERE id = ?", (bob_id,))
    assert row is not None and row["role"] == "admin" and row["disabled"] == 0
    second = await client.post(
        "/api/users",
        json={"username": "erin", "password": password, "role": "admin"},
        headers=admin_headers,
    )
    assert second.status_code == 201
    demoted = await client.patch(
        f"/api/users/{bob_id}", json={"role": "read"}, headers=admin_headers
    )
    assert demoted.status_code == 200 and demoted.json()["role"] == "read"
    listing = await client.get("/api/users", headers=admin_headers)
    names = [u["username"] for u in listing.json()["items"]]
    assert [n for n in names if n != TOKEN_OWNER] == ["bob", "erin"]
