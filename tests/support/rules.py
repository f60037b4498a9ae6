"""Helpers shared by the trigger-rule and policy tests (no tests in here)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from app.auth import service as auth_service
from app.core.context import AppContext
from app.events.transaction import transaction
from app.events.types import EventType
from app.rules.engine import engine_state
from app.security.principal import Scope
from tests.support.api import ADMIN_PASSWORD, login

AGENT: dict[str, Any] = {
    "name": "worker",
    "role": "does the work",
    "model": "claude-sonnet",
    "profile": "demo",
    "quotas": {"tokens_per_day": 1_000_000, "cost_usd_per_day": 100.0, "runs_per_day": 10_000},
}

NOTIFY_RULE: dict[str, Any] = {
    "name": "urgent tasks",
    "on": "task.created",
    "when": [{"field": "payload.priority", "op": "in", "value": ["high", "urgent"]}],
    "then": [
        {
            "type": "notify",
            "category": "task",
            "severity": "warning",
            "title": "Urgent task {subject_id}",
            "body": "A {type} event for task {subject_id}.",
        }
    ],
}

TABLES = (
    "rules",
    "rule_firings",
    "events",
    "notifications",
    "escalations",
    "audit_log",
    "tasks",
    "conversations",
    "policies",
    "agents",
)


async def create_agent(
    client: httpx.AsyncClient, headers: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    response = await client.post("/api/agents", json={**AGENT, **overrides}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create_shell_agent(
    client: httpx.AsyncClient, headers: dict[str, str], name: str = "ops"
) -> dict[str, Any]:
    return await create_agent(
        client, headers, name=name, shell_access=True, allowed_tools=["shell"]
    )


def task_rule(agent_id: int, **overrides: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "name": f"follow up for {agent_id}",
        "on": "task.created",
        "when": [{"field": "payload.priority", "op": "eq", "value": "urgent"}],
        "then": [
            {
                "type": "create_task",
                "agent_id": agent_id,
                "title": "Follow up on task {subject_id}",
                "description": "Look at task {subject_id}.",
                "priority": "normal",
            }
        ],
    }
    rule.update(overrides)
    return rule


async def create_rule(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post("/api/rules", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def emit(
    ctx: AppContext,
    event_type: EventType,
    subject_id: int | None,
    payload: dict[str, Any],
    *,
    subject_type: str = "task",
    rule_depth: int = 0,
    actor: str = "user:test",
) -> int:
    """Commit one event as a service would, and wake the engine."""
    await engine_state(ctx).started.wait()
    async with transaction(ctx, actor, "test") as tx:
        return await tx.emit(event_type, subject_type, subject_id, payload, rule_depth=rule_depth)


async def processed(ctx: AppContext, event_id: int, timeout: float = 10.0) -> None:
    """Wait until the engine has handled every event up to ``event_id`` (and what it made)."""
    state = engine_state(ctx)
    async with asyncio.timeout(timeout):
        while True:
            latest = await ctx.db.fetch_one("SELECT max(id) FROM events")
            top = int(latest[0]) if latest and latest[0] is not None else 0
            if state.last_id is not None and state.last_id >= max(event_id, top):
                # Nothing newer arrived while we looked: the chain has settled.
                await asyncio.sleep(0.05)
                again = await ctx.db.fetch_one("SELECT max(id) FROM events")
                if again is not None and int(again[0] or 0) == top and state.last_id >= top:
                    return
            ctx.bus.publish(0)
            await asyncio.sleep(0.02)


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def count(ctx: AppContext, sql: str, params: tuple[Any, ...] = ()) -> int:
    row = await ctx.db.fetch_one(sql, params)
    assert row is not None
    return int(row[0])


async def firings(ctx: AppContext, rule_id: int) -> list[str]:
    rows = await ctx.db.fetch_all(
        "SELECT outcome FROM rule_firings WHERE rule_id = ? ORDER BY id", (rule_id,)
    )
    return [str(r["outcome"]) for r in rows]


async def security_titles(ctx: AppContext) -> list[str]:
    rows = await ctx.db.fetch_all(
        "SELECT title FROM notifications WHERE category = 'security' AND muted = 0 ORDER BY id"
    )
    return [str(r["title"]) for r in rows]


def snapshot(ctx: AppContext) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(ctx.settings.database_path)
    try:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in TABLES}
    finally:
        conn.close()


async def add_admin(ctx: AppContext, username: str) -> None:
    await auth_service.create_user(
        ctx.db,
        username=username,
        password=ADMIN_PASSWORD,
        role=Scope.ADMIN,
        actor="test",
        client="test",
    )


@asynccontextmanager
async def session_client(app: FastAPI, username: str) -> AsyncIterator[httpx.AsyncClient]:
    """A separate browser: its own cookie jar, logged in, CSRF header set."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await login(http, username)
        assert response.status_code == 200, response.text
        http.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        yield http
