"""The optional think cycle: periodic, gated, one open at a time, through pre-flight."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from app.core.context import AppContext
from app.runner.think import TITLE, schedule_think_cycles
from tests.support.worker import make_settings, running_worker


async def _agent(client: httpx.AsyncClient, admin: dict[str, str], **extra: object) -> int:
    body = {"name": "thinker", "role": "r", "model": "demo-1", **extra}
    created = await client.post("/api/agents", json=body, headers=admin)
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


async def test_think_cycle_is_periodic_single_and_runs(
    client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    thinker = await _agent(client, admin_headers, think_interval_minutes=30)
    plain = await client.post(
        "/api/agents", json={"name": "plain", "role": "r", "model": "m"}, headers=admin_headers
    )
    assert plain.status_code == 201
    now = datetime.now(UTC)
    start = now.replace(minute=now.minute - now.minute % 30, second=0, microsecond=0)
    first = await schedule_think_cycles(ctx, start)
    assert len(first) == 1
    task = (await client.get(f"/api/tasks/{first[0]}", headers=admin_headers)).json()
    assert task["title"] == TITLE and task["agent_id"] == thinker and task["priority"] == "low"
    # one open at a time, whatever the clock says
    assert await schedule_think_cycles(ctx, start + timedelta(hours=5)) == []

    settings = make_settings(tmp_path, database_path=ctx.settings.database_path)
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
        assert outcome is not None and outcome.status == "SUCCEEDED"
    # same slot: nothing new; the next slot: a new one
    assert await schedule_think_cycles(ctx, start + timedelta(minutes=10)) == []
    assert len(await schedule_think_cycles(ctx, start + timedelta(minutes=31))) == 1


async def test_think_cycle_respects_pre_flight(
    client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    thinker = await _agent(
        client,
        admin_headers,
        think_interval_minutes=30,
        quotas={"tokens_per_day": 1000, "cost_usd_per_day": 1.0, "runs_per_day": 0},
    )
    assert await schedule_think_cycles(ctx) == []
    refused = await ctx.db.fetch_all(
        "SELECT kind FROM escalations WHERE subject_type = 'agent' OR kind = 'preflight_refused'"
    )
    assert refused, "the refused think cycle should leave an escalation"
    assert thinker > 0


async def test_the_worker_schedules_think_cycles_on_its_own(
    client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    await _agent(client, admin_headers, think_interval_minutes=30)
    settings = make_settings(tmp_path, database_path=ctx.settings.database_path)
    async with running_worker(settings, stale_check_s=0.05) as worker:
        serving = asyncio.create_task(worker.serve())
        for _ in range(100):
            row = await ctx.db.fetch_one("SELECT count(*) FROM tasks WHERE title = ?", (TITLE,))
            if row is not None and row[0]:
                break
            await asyncio.sleep(0.05)
        worker.request_stop()
        await asyncio.wait_for(serving, 10)
    row = await ctx.db.fetch_one("SELECT count(*) FROM tasks WHERE title = ?", (TITLE,))
    assert row is not None and row[0] == 1
