"""The HTTP edge inside the app: headers, limits, timeouts, errors (F4, F9, F10)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.core.context import AppContext
from app.core.headers import CONTENT_SECURITY_POLICY
from app.security.principal import Scope
from tests.support.api import TokenFactory, assert_error_shape, bearer


def assert_security_headers(response: httpx.Response) -> None:
    headers = response.headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-request-id"]


async def test_security_headers_on_every_kind_of_response(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    responses = [
        await client.get("/healthz"),
        await client.get("/api/health"),
        await client.get("/api/health", headers=admin_headers),
        await client.get("/no/such/path"),
        await client.get("/api/health?token=x"),
        await client.post("/api/tokens", content=b"x" * (2 * 1024 * 1024), headers=admin_headers),
        await client.put("/healthz"),
    ]
    assert [r.status_code for r in responses] == [200, 401, 200, 404, 400, 413, 405]
    for response in responses:
        assert_security_headers(response)


async def test_body_over_the_limit_is_refused_by_content_length(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    body = b'{"name": "' + b"a" * (1024 * 1024) + b'", "scope": "read"}'
    response = await client.post("/api/tokens", content=body, headers=admin_headers)
    assert_error_shape(response, 413, "body_too_large")
    row = await ctx.db.fetch_one("SELECT count(*) FROM api_tokens")
    assert row is not None and row[0] == 1  # only the admin token of the fixture


async def test_body_over_the_limit_is_refused_while_streaming(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(64):
            sent += 64 * 1024
            yield b"x" * (64 * 1024)

    response = await client.post("/api/tokens", content=chunks(), headers=admin_headers)
    assert "content-length" not in response.request.headers
    assert_error_shape(response, 413, "body_too_large")


@pytest.mark.parametrize("settings_overrides", [{"request_timeout_s": 0.3}])
async def test_slow_requests_time_out(app: FastAPI, client: httpx.AsyncClient) -> None:
    @app.get("/test-slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(5)
        return {"late": "yes"}

    response = await client.get("/test-slow")
    assert_error_shape(response, 504, "timeout")


async def test_unexpected_errors_are_generic_500s(app: FastAPI, client: httpx.AsyncClient) -> None:
    @app.get("/test-crash")
    async def crash() -> None:
        raise RuntimeError("database password is hunter2 at /var/lib/secret")

    response = await client.get("/test-crash")
    assert_error_shape(response, 500, "internal_error")
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert response.headers["content-security-policy"]


@pytest.mark.parametrize(
    "settings_overrides", [{"rate_limit_per_client": 1.0, "rate_limit_burst_per_client": 5}]
)
async def test_clients_are_rate_limited(client: httpx.AsyncClient) -> None:
    statuses = [(await client.get("/healthz")).status_code for _ in range(8)]
    assert statuses[:5] == [200] * 5
    assert 429 in statuses[5:]
    limited = await client.get("/healthz")
    assert_error_shape(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    "settings_overrides",
    [{"rate_limit_per_credential": 1.0, "rate_limit_burst_per_credential": 3}],
)
async def test_credentials_are_rate_limited(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    first = bearer(await make_token(Scope.READ))
    second = bearer(await make_token(Scope.READ))
    statuses = [(await client.get("/api/health", headers=first)).status_code for _ in range(5)]
    assert statuses[:3] == [200] * 3 and statuses[3:] == [429, 429]
    assert (await client.get("/api/health", headers=second)).status_code == 200


@pytest.mark.parametrize(
    "settings_overrides",
    [{"rate_limit_per_client": 1.0, "rate_limit_burst_per_client": 2}],
)
async def test_forwarded_for_does_not_escape_the_limit_from_untrusted_peers(
    client: httpx.AsyncClient,
) -> None:
    statuses = [
        (await client.get("/healthz", headers={"X-Forwarded-For": f"10.0.0.{i}"})).status_code
        for i in range(4)
    ]
    assert statuses[2:] == [429, 429]


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "rate_limit_per_client": 1.0,
            "rate_limit_burst_per_client": 2,
            "trusted_proxies": ["127.0.0.1/32"],
        }
    ],
)
async def test_forwarded_for_is_honoured_from_a_trusted_proxy(client: httpx.AsyncClient) -> None:
    statuses = [
        (await client.get("/healthz", headers={"X-Forwarded-For": f"10.0.0.{i}"})).status_code
        for i in range(4)
    ]
    assert statuses == [200] * 4


async def test_pagination_defaults_and_hard_maximum(
    client: httpx.AsyncClient, admin_headers: dict[str, str], make_token: TokenFactory
) -> None:
    for _ in range(60):
        await make_token(Scope.READ)
    page = (await client.get("/api/tokens", headers=admin_headers)).json()
    assert page["limit"] == 50 and len(page["items"]) == 50
    assert page["total"] == 61 and page["next_offset"] == 50
    rest = (await client.get("/api/tokens?offset=50", headers=admin_headers)).json()
    assert len(rest["items"]) == 11 and rest["next_offset"] is None
    ids = [t["public_id"] for t in page["items"] + rest["items"]]
    assert len(set(ids)) == 61
    most = await client.get("/api/tokens?limit=200", headers=admin_headers)
    assert most.status_code == 200
    for bad in ("limit=201", "limit=100000000", "limit=0", "limit=-1", "offset=-5", "limit=abc"):
        assert_error_shape(
            await client.get(f"/api/tokens?{bad}", headers=admin_headers), 422, "validation_failed"
        )


@pytest.mark.parametrize("settings_overrides", [{"ticket_rate_per_minute": 2}])
async def test_ticket_endpoint_is_stricter_than_the_rest(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    statuses = [
        (await client.post("/api/events/ticket", headers=admin_headers)).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    assert (await client.get("/api/health", headers=admin_headers)).status_code == 200
