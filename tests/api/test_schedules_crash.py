"""Exactly once per due time across a kill -9 of the firing process
(docs/schedules.md, "Exactly once").

A separate process runs a firing pass and is killed with SIGKILL at the firing
moment: inside the transaction that holds the new task and its firing row (the
commit never happens), or right after that commit. A second pass then runs.
Each of 20 due times must end with exactly one firing and one task. A pass that
reads a stale cursor (a second worker, a re-run) is stopped by the unique index.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.care.clock import fixed, use_probe
from app.core.clock import iso, parse_iso
from app.core.context import AppContext
from app.schedules import service
from tests.api.test_schedules_api import firings, new_schedule, scheduled_tasks
from tests.support.api import TokenFactory
from tests.support.tasks import execute, make_agent, operate_headers, rows

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 20

# The firing process: one pass at a given moment. ``in_tx`` stops inside the firing's
# transaction (task and firing row written, not committed); ``committed`` stops right
# after the commit; ``plain`` just runs. Each says where it is, then waits to be killed.
CHILD = r"""
import asyncio, sys
from datetime import datetime
from app.core.database import Database
from app.core.settings import load_settings
from app.schedules import service, store
from app.wiring import build_context

mode, moment = sys.argv[1], datetime.fromisoformat(sys.argv[2])
insert_firing, step = store.insert_firing, service._step

async def insert_then_wait(conn, values):
    firing_id = await insert_firing(conn, values)
    if mode == "in_tx":
        print("FIRING", flush=True)
        await asyncio.sleep(60)
    return firing_id

async def step_then_wait(ctx, schedule_id, now):
    fired = await step(ctx, schedule_id, now)
    if fired and mode == "committed":
        print("FIRING", flush=True)
        await asyncio.sleep(60)
    return fired

store.insert_firing = insert_then_wait
service._step = step_then_wait

async def main():
    settings = load_settings()
    db = Database(settings.database_path, readers=1, busy_timeout_ms=settings.busy_timeout_ms,
                  synchronous=settings.db_synchronous)
    await db.open()
    ctx = build_context(settings, db, b"")
    fired = await service.fire_due_schedules(ctx, moment)
    print("DONE", fired, flush=True)
    await db.close()

asyncio.run(main())
"""


def run_child(ctx: AppContext, mode: str, moment: datetime, *, kill: bool) -> str:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MC_DATABASE_PATH": str(ctx.settings.database_path),
        "MC_STATE_DIR": str(ctx.settings.state_dir),
        "MC_ENV_FILE": str(ctx.settings.state_dir / "no-env-file"),
        "MC_CLOCK_ASSUME_SYNCHRONISED": "true",
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, moment.isoformat()],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        line = child.stdout.readline().strip()
        if kill:
            assert line == "FIRING", (line, child.stderr.read() if child.stderr else "")
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    if kill:
        assert child.returncode == -signal.SIGKILL
    return line


@pytest.fixture
async def hourly(
    client: httpx.AsyncClient, admin_headers: dict[str, str], make_token: TokenFactory
) -> dict[str, Any]:
    agent = await make_agent(client, admin_headers)
    return await new_schedule(client, await operate_headers(make_token), agent["id"])


async def test_a_kill_at_the_firing_moment_leaves_exactly_one_task_per_due_time(
    ctx: AppContext, hourly: dict[str, Any]
) -> None:
    sid, due = hourly["id"], parse_iso(hourly["next_due"][0])
    execute(ctx, "UPDATE agents SET quota_runs_per_day = 1000")
    for round_ in range(ROUNDS):
        moment = due + timedelta(hours=round_, seconds=10)
        mode = "in_tx" if round_ % 2 == 0 else "committed"
        run_child(ctx, mode, moment, kill=True)  # killed at the firing moment
        with use_probe(fixed(True)):  # the restarted worker's passes
            await service.fire_due_schedules(ctx, moment)
            assert await service.fire_due_schedules(ctx, moment) == 0
        per_due = rows(
            ctx,
            "SELECT due_at, count(*), count(task_id) FROM schedule_firings"
            " WHERE schedule_id = ? GROUP BY due_at ORDER BY due_at",
            (sid,),
        )
        assert per_due == [(iso(due + timedelta(hours=h)), 1, 1) for h in range(round_ + 1)], (
            f"round {round_} ({mode})"
        )
        assert scheduled_tasks(ctx, sid) == round_ + 1


async def test_a_stale_cursor_cannot_fire_a_due_time_twice(
    ctx: AppContext, hourly: dict[str, Any]
) -> None:
    sid, due = hourly["id"], parse_iso(hourly["next_due"][0])
    cursor = rows(ctx, "SELECT handled_through FROM schedules WHERE id = ?", (sid,))[0][0]
    with use_probe(fixed(True)):
        assert await service.fire_due_schedules(ctx, due + timedelta(seconds=10)) == 1
        # what a second worker that read the schedule before the commit would do
        execute(ctx, "UPDATE schedules SET handled_through = ? WHERE id = ?", (cursor, sid))
        assert await service.fire_due_schedules(ctx, due + timedelta(seconds=20)) == 0
    assert len(firings(ctx, sid)) == 1
    assert scheduled_tasks(ctx, sid) == 1
