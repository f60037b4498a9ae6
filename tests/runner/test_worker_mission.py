"""A mission through the real API and the real worker: approved, run, succeeded."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from app.core.context import AppContext
from app.security.principal import Scope
from tests.support.api import TokenFactory, bearer
from tests.support.tasks import approved_mission
from tests.support.worker import make_settings, running_worker


async def _agent(client: httpx.AsyncClient, admin: dict[str, str], name: str) -> int:
    created = await client.post(
        "/api/agents", json={"name": name, "role": "r", "model": "demo-1"}, headers=admin
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


async def test_worker_completes_and_fails_missions(
    app: FastAPI,
    client: httpx.AsyncClient,
    ctx: AppContext,
    admin_headers: dict[str, str],
    make_token: TokenFactory,
    tmp_path: Path,
) -> None:
    operate = bearer(await make_token(Scope.OPERATE))
    agent = await _agent(client, admin_headers, "gardener")
    mission = await approved_mission(app, client, ctx, operate, [agent, agent])
    for step in (1, 2):
        task = await client.post(
            "/api/tasks",
            json={
                "title": f"step {step}",
                "description": "water the beds",
                "agent_id": agent,
                "mission_id": mission["id"],
                "mission_step": step,
            },
            headers=operate,
        )
        assert task.status_code == 201, task.text
    running = await client.get(f"/api/missions/{mission['id']}", headers=operate)
    assert running.json()["status"] == "running"

    settings = make_settings(tmp_path, database_path=ctx.settings.database_path)
    async with running_worker(settings) as worker:
        first = await worker.run_once()
        assert first is not None and first.status == "SUCCEEDED"
        halfway = await client.get(f"/api/missions/{mission['id']}", headers=operate)
        assert halfway.json()["status"] == "running"
        second = await worker.run_once()
        assert second is not None and second.status == "SUCCEEDED"
    done = await client.get(f"/api/missions/{mission['id']}", headers=operate)
    assert done.json()["status"] == "succeeded"
    assert done.json()["spent_tokens"] > 0

    failing = await approved_mission(app, client, ctx, operate, [agent])
    task = await client.post(
        "/api/tasks",
        json={
            "title": "break",
            "description": "DEMO:fail",
            "agent_id": agent,
            "mission_id": failing["id"],
            "mission_step": 1,
        },
        headers=operate,
    )
    assert task.status_code == 201, task.text
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
        assert outcome is not None and outcome.status == "FAILED"
    failed = await client.get(f"/api/missions/{failing['id']}", headers=operate)
    assert failed.json()["status"] == "failed"
