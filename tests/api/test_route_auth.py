"""Every route not on the public allow-list answers 401 without credentials (F1).

The list of routes is read from the application itself, so a future route
that forgets its auth dependency fails here.
"""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from app.main import PUBLIC_ROUTES, route_table
from tests.support.api import assert_error_shape


def protected_routes(app: FastAPI) -> list[tuple[str, str]]:
    return [
        (method, re.sub(r"\{[^}]+\}", "1", path))
        for method, path in route_table(app)
        if (method, path) not in PUBLIC_ROUTES
    ]


async def test_application_has_protected_routes(app: FastAPI) -> None:
    routes = protected_routes(app)
    assert len(routes) >= 10
    assert ("GET", "/api/openapi.json") in routes


async def test_every_protected_route_needs_a_credential(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    for method, path in protected_routes(app):
        response = await client.request(method, path, json={})
        assert_error_shape(response, 401, "unauthenticated")


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://testserver"},
        {"Referer": "http://testserver/"},
        {"Host": "localhost"},
        {"Host": "127.0.0.1:8080", "Origin": "http://127.0.0.1:8080"},
        {"X-Forwarded-For": "127.0.0.1"},
        {"X-Real-IP": "127.0.0.1"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        {"Authorization": "Bearer mc_aaaaaaaaaa_" + "A" * 43},
        {"Cookie": "mc_session=forged"},
        {"X-API-Key": "anything"},
    ],
)
async def test_no_header_other_than_a_valid_credential_grants_access(
    app: FastAPI, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for method, path in protected_routes(app):
        response = await client.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (method, path, headers, response.text)


async def test_public_allow_list_is_exactly_what_answers_anonymously(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # Growing the allow-list is a deliberate act: it must be written here too.
    assert {
        ("GET", "/healthz"),
        ("POST", "/api/auth/login"),
        ("GET", "/"),
        ("GET", "/static/app.css"),
        ("GET", "/static/login.js"),
        ("GET", "/static/icon.svg"),
        ("GET", "/static/manifest.webmanifest"),
        ("GET", "/static/icon-192.png"),
        ("GET", "/static/icon-512.png"),
    } == PUBLIC_ROUTES
    table = set(route_table(app))
    for method, path in PUBLIC_ROUTES:
        assert (method, path) in table, f"allow-listed route {method} {path} does not exist"
        if method == "GET":
            response = await client.get(path)
            assert response.status_code == 200, f"public route {path} did not answer"
    assert (await client.get("/healthz")).status_code == 200
    login = await client.post("/api/auth/login", json={"username": "x", "password": "y"})
    assert login.status_code == 401


async def test_openapi_document_needs_read_scope(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    assert (await client.get("/api/openapi.json")).status_code == 401
    assert (await client.get("/docs")).status_code == 404
    assert (await client.get("/openapi.json")).status_code == 404
    document = await client.get("/api/openapi.json", headers=admin_headers)
    assert document.status_code == 200
    assert "/api/tokens" in document.json()["paths"]
