"""Bad input gets a clear 4xx in the one error shape; nothing stored changes."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from app.core.context import AppContext
from tests.support.api import assert_error_shape


def snapshot(ctx: AppContext) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(ctx.settings.database_path)
    try:
        users = conn.execute("SELECT * FROM users ORDER BY id").fetchall()
        tokens = conn.execute("SELECT id, public_id, scope, revoked_at FROM api_tokens").fetchall()
        return [*users, *tokens]
    finally:
        conn.close()


BAD_BODIES: list[tuple[str, bytes, int, str]] = [
    ("malformed json", b'{"username": "x", ', 400, "invalid_json"),
    ("not json at all", b"username=x&password=y", 400, "invalid_json"),
    ("invalid utf-8", b'{"username": "\xff\xfe", "password": "p"}', 400, ""),
    ("wrong types", b'{"username": 5, "password": ["a"], "role": 7}', 422, "validation_failed"),
    (
        "unknown field",
        b'{"username": "zed", "password": "long password 123", "is_admin": true}',
        422,
        "validation_failed",
    ),
    (
        "bad enum",
        b'{"username": "zed", "password": "long password 123", "role": "root"}',
        422,
        "validation_failed",
    ),
    (
        "bad name",
        b'{"username": "../../etc/passwd", "password": "long password 123"}',
        422,
        "validation_failed",
    ),
    ("null body", b"null", 422, "validation_failed"),
    ("array body", b"[]", 422, "validation_failed"),
    ("empty body", b"", 422, "validation_failed"),
    (
        "huge number",
        b'{"username": "zed", "password": "long password 123", "role": 1e999}',
        422,
        "validation_failed",
    ),
]


@pytest.mark.parametrize(("label", "body", "status", "code"), BAD_BODIES)
async def test_bad_bodies_are_refused_cleanly(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    ctx: AppContext,
    label: str,
    body: bytes,
    status: int,
    code: str,
) -> None:
    before = snapshot(ctx)
    response = await client.post(
        "/api/users", content=body, headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert_error_shape(response, status, code or None)
    assert snapshot(ctx) == before, label


async def test_validation_errors_do_not_echo_the_input(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    secret = "sk-ant-api03-" + "Z" * 40
    response = await client.post(
        "/api/tokens", json={"name": "x", "scope": secret}, headers=admin_headers
    )
    assert_error_shape(response, 422, "validation_failed")
    assert secret not in response.text
    assert response.json()["error"]["details"][0]["loc"] == ["body", "scope"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/../etc/passwd",
        "/api/%2e%2e/%2e%2e/etc/passwd",
        "/api/users/..%2f..%2fetc",
        "/api/tokens/%00",
        "/%ff%fe",
        "/api/users/1/../../../healthz/x",
    ],
)
async def test_path_tricks_get_clean_errors(
    client: httpx.AsyncClient, admin_headers: dict[str, str], path: str
) -> None:
    response = await client.get(path, headers=admin_headers)
    assert 400 <= response.status_code < 500
    assert_error_shape(response, response.status_code)


async def test_wrong_path_parameter_type(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.patch("/api/users/abc", json={"role": "read"}, headers=admin_headers)
    assert_error_shape(response, 422, "validation_failed")
    missing = await client.patch("/api/users/99999", json={"role": "read"}, headers=admin_headers)
    assert_error_shape(missing, 404, "not_found")


async def test_login_with_bad_input(client: httpx.AsyncClient) -> None:
    json_type = {"Content-Type": "application/json"}
    broken = await client.post("/api/auth/login", content=b"{", headers=json_type)
    assert_error_shape(broken, 400, "invalid_json")
    untyped = await client.post("/api/auth/login", content=b"{")
    assert_error_shape(untyped, 422, "validation_failed")
    too_long = await client.post("/api/auth/login", json={"username": "a" * 1000, "password": "x"})
    assert_error_shape(too_long, 422, "validation_failed")
