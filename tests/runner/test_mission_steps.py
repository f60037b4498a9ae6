"""Missions run their own steps (app/missions/steps.py, app/runner/mission_steps.py):
in order, each handing its result to the next, pausing where a step says so."""

from __future__ import annotations

import json
from pathlib import Path

from app.runner.mission_steps import advance_missions
from tests.support.worker import (
    DEMO_ARGV,
    Rows,
    make_settings,
    profile,
    running_worker,
    write_profiles,
)


async def drive(worker: object, rounds: int = 10) -> None:
    """What the worker's loops do: start what may start, run what is queued."""
    from app.runner.worker import Worker

    assert isinstance(worker, Worker)
    for _ in range(rounds):
        started = await advance_missions(worker.ctx, worker.actor)
        ran = await worker.run_once()
        if not started and ran is None:
            return


async def test_a_three_step_mission_runs_itself_with_one_human_pause(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    write_profiles(tmp_path, {"demo": profile(DEMO_ARGV)})
    builder = rows.agent("builder")
    tester = rows.agent("tester")
    steps = [
        {"title": "Build it", "agent_id": builder, "instructions": "build"},
        {"title": "Test it", "agent_id": tester, "instructions": "test"},
        {"title": "Ship it", "agent_id": builder, "instructions": "ship", "pause_before": True},
    ]
    mission = rows.mission(status="approved", steps=steps)
    async with running_worker(settings) as worker:
        # one step at a time: the next waits for the one before to succeed
        assert await advance_missions(worker.ctx, worker.actor) == 1
        assert await advance_missions(worker.ctx, worker.actor) == 0
        assert rows.value("SELECT count(*) FROM tasks WHERE mission_id = ?", (mission,)) == 1
        await drive(worker)
        tasks = rows.all(
            "SELECT id, mission_step, status, agent_id FROM tasks WHERE mission_id = ? ORDER BY id",
            (mission,),
        )
        assert [(t["mission_step"], t["status"], t["agent_id"]) for t in tasks] == [
            (1, "succeeded", builder),
            (2, "succeeded", tester),
        ]
        # step 2 got step 1's result handed over
        assert (
            rows.all(
                "SELECT depends_on FROM task_dependencies WHERE task_id = ?", (tasks[1]["id"],)
            )[0][0]
            == tasks[0]["id"]
        )
        assert rows.value("SELECT status FROM missions WHERE id = ?", (mission,)) == "running"
        (waiting,) = rows.escalations("mission_waiting")
        assert waiting["status"] == "open" and json.loads(waiting["details"])["step"] == 3
        assert "waits for you before step 3" in waiting["reason"]
        await drive(worker)  # nothing starts while the person has not said so
        assert rows.value("SELECT count(*) FROM tasks WHERE mission_id = ?", (mission,)) == 2
        assert len(rows.escalations("mission_waiting")) == 1  # asked once
        # the person says go (resolving the escalation, as the Escalations page does)
        rows.execute(
            "UPDATE escalations SET status = 'resolved', resolved_by = 'user:alice' WHERE id = ?",
            (waiting["id"],),
        )
        await drive(worker)
    statuses = rows.all(
        "SELECT mission_step, status FROM tasks WHERE mission_id = ? ORDER BY id", (mission,)
    )
    assert [tuple(s) for s in statuses] == [(1, "succeeded"), (2, "succeeded"), (3, "succeeded")]
    assert rows.value("SELECT status FROM missions WHERE id = ?", (mission,)) == "succeeded"


async def test_a_failed_step_stops_the_mission(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    write_profiles(tmp_path, {"demo": profile(DEMO_ARGV)})
    agent = rows.agent()
    steps = [
        {"title": "Break", "agent_id": agent, "instructions": "DEMO:fail"},
        {"title": "Never", "agent_id": agent, "instructions": "x"},
    ]
    mission = rows.mission(status="approved", steps=steps)
    async with running_worker(settings) as worker:
        await drive(worker)
    assert rows.value("SELECT status FROM missions WHERE id = ?", (mission,)) == "failed"
    assert rows.value("SELECT count(*) FROM tasks WHERE mission_id = ?", (mission,)) == 1


async def test_a_refused_step_is_escalated_once_and_left_for_a_person(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    write_profiles(tmp_path, {"demo": profile(DEMO_ARGV)})
    agent = rows.agent()
    mission = rows.mission(
        status="approved", steps=[{"title": "Wait", "agent_id": agent, "instructions": ""}]
    )
    # paused after the approval (a proposal naming a paused agent is refused)
    rows.execute("UPDATE agents SET status = 'paused' WHERE id = ?", (agent,))
    async with running_worker(settings) as worker:
        await drive(worker)
        await drive(worker)
    (refused,) = rows.escalations("mission_step_refused")
    assert "could not start" in refused["reason"]
    assert rows.value("SELECT status FROM missions WHERE id = ?", (mission,)) == "approved"


async def serve_briefly(settings: object, seconds: float) -> None:
    """The worker's own loops (serve), with a short pass interval."""
    import asyncio

    from app.core.settings import Settings

    assert isinstance(settings, Settings)
    async with running_worker(settings, schedule_poll_s=0.1) as worker:
        serving = asyncio.create_task(worker.serve())
        await asyncio.sleep(seconds)
        worker.request_stop()
        await asyncio.wait_for(serving, 10)


async def test_the_worker_starts_steps_by_itself_unless_told_not_to(tmp_path: Path) -> None:
    for run_steps, expected in ((True, 1), (False, 0)):
        folder = tmp_path / str(run_steps)
        folder.mkdir()
        settings = make_settings(folder, missions_run_steps=run_steps)
        rows = Rows(settings.database_path)
        write_profiles(folder, {"demo": profile(DEMO_ARGV)})
        agent = rows.agent()
        mission = rows.mission(
            status="approved", steps=[{"title": "Go", "agent_id": agent, "instructions": ""}]
        )
        await serve_briefly(settings, 1.5)
        count = rows.value("SELECT count(*) FROM tasks WHERE mission_id = ?", (mission,))
        assert count == expected, (run_steps, count)
