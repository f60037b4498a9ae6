"""Shared helpers of the mission, task and conversation tests (no tests here)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from app.auth import service as auth_service
from app.core.context import AppContext
from app.security.principal import Scope
from tests.support.api import ADMIN_PASSWORD, TokenFactory, bearer, login

GITHUB_TOKEN = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"

AGENT: dict[str, Any] = {
    "name": "worker-1",
    "role": "builder",
    "model": "demo-model",
    "profile": "demo",
    "identity": "You build things.",
}


async def make_agent(
    client: httpx.AsyncClient, admin_headers: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    response = await client.post("/api/agents", json={**AGENT, **overrides}, headers=admin_headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def operate_headers(make_token: TokenFactory) -> dict[str, str]:
    return bearer(await make_token(Scope.OPERATE))


async def post_task(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: Any
) -> httpx.Response:
    body = {"title": "Summarise the garden notes", **fields}
    return await client.post("/api/tasks", json=body, headers=headers)


async def new_task(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: Any
) -> dict[str, Any]:
    response = await post_task(client, headers, **fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def rows(ctx: AppContext, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the database file directly (outside the app's connections)."""
    conn = sqlite3.connect(ctx.settings.database_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def count(ctx: AppContext, table: str, where: str = "1 = 1", params: tuple[Any, ...] = ()) -> int:
    return int(rows(ctx, f"SELECT count(*) FROM {table} WHERE {where}", params)[0][0])


def execute(ctx: AppContext, sql: str, params: tuple[Any, ...] = ()) -> None:
    conn = sqlite3.connect(ctx.settings.database_path)
    try:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


DOMAIN_TABLES = ("tasks", "task_dependencies", "conversations", "missions")


def domain_snapshot(ctx: AppContext) -> dict[str, list[tuple[Any, ...]]]:
    return {table: rows(ctx, f"SELECT * FROM {table} ORDER BY rowid") for table in DOMAIN_TABLES}


def events_of(ctx: AppContext, event_type: str) -> list[tuple[Any, ...]]:
    return rows(
        ctx,
        "SELECT subject_id, payload, rule_depth FROM events WHERE type = ? ORDER BY id",
        (event_type,),
    )


async def add_user(ctx: AppContext, username: str, role: Scope = Scope.OPERATE) -> str:
    await auth_service.create_user(
        ctx.db, username=username, password=ADMIN_PASSWORD, role=role, actor="test", client="test"
    )
    return username


@asynccontextmanager
async def session_client(app: FastAPI, username: str) -> AsyncIterator[httpx.AsyncClient]:
    """A separate browser-like client logged in as ``username`` (cookie + CSRF header)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await login(http, username)
        assert response.status_code == 200, response.text
        http.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        yield http


def mission_body(agent_ids: list[int], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Tidy the garden",
        "goal": "Every bed weeded and watered",
        "steps": [
            {"title": f"step {i}", "agent_id": agent_id, "instructions": "do it"}
            for i, agent_id in enumerate(agent_ids, start=1)
        ],
    }
    body.update(overrides)
    return body


async def approved_mission(
    app: FastAPI,
    client: httpx.AsyncClient,
    ctx: AppContext,
    proposer: dict[str, str],
    agent_ids: list[int],
    **overrides: Any,
) -> dict[str, Any]:
    """Proposed with ``proposer`` (a token), approved by a separate human operator."""
    proposed = await client.post(
        "/api/missions", json=mission_body(agent_ids, **overrides), headers=proposer
    )
    assert proposed.status_code == 201, proposed.text
    mission_id = proposed.json()["id"]
    approver = f"approver{mission_id}"
    await add_user(ctx, approver)
    async with session_client(app, approver) as human:
        approved = await human.post(f"/api/missions/{mission_id}/approve", json={})
    assert approved.status_code == 200, approved.text
    body: dict[str, Any] = approved.json()
    return body
