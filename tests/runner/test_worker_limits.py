"""Quotas (F15), mission bounds (F17), circuit breakers (F13), wall clock and output
caps (F12) as the worker enforces them. Each test fails when its control is removed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from app.core.clock import now_iso, utcnow
from tests.support.processes import alive, kill_all, read_pids, wait_gone
from tests.support.worker import (
    DEMO_ARGV,
    ELSEWHERE,
    Rows,
    add_mission_spend,
    claimed_run,
    make_settings,
    profile,
    running_worker,
    script_profile,
    write_agent,
    write_profiles,
)


def marker_agent(tmp_path: Path) -> Path:
    """An agent that leaves a file behind when it runs (so 'not started' is checkable)."""
    ran = tmp_path / "ran"
    return write_agent(
        tmp_path,
        "marker",
        f"""
        open({str(ran)!r}, "a").write("ran\\n")
        emit("ok", tokens_in=100, tokens_out=50, cost=0.5)
        """,
    )


# ------------------------------------------------------------------ quotas


@pytest.mark.parametrize(
    ("quota", "ledger", "earlier_runs", "which"),
    [
        ({"tokens": 1000}, (1000, 0.0), 0, "tokens"),
        ({"cost": 1.0}, (10, 1.25), 0, "cost"),
        ({"runs": 2}, (0, 0.0), 2, "runs"),
    ],
)
async def test_quota_reached_refuses_the_run(
    tmp_path: Path,
    quota: dict[str, float],
    ledger: tuple[int, float],
    earlier_runs: int,
    which: str,
) -> None:
    write_profiles(tmp_path, {"marker": script_profile(marker_agent(tmp_path))})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="marker", **quota)  # type: ignore[arg-type]
    # the task first: pre-flight refuses a new task once the quota is used up
    task, conversation = rows.task(agent, "over quota")
    if earlier_runs:  # runs already started today: one run, interrupted and run again
        earlier, _ = rows.task(agent, "earlier")
        path = settings.database_path
        await claimed_run(path, earlier, agent, ELSEWHERE, at=utcnow(), attempt=earlier_runs)
        rows.end_run(earlier)
    today = now_iso()
    rows.execute(
        "INSERT INTO usage_ledger (agent_id, day, tokens, cost_usd, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (agent, today[:10], ledger[0], ledger[1], today),
    )

    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and not outcome.ran
    assert outcome.conversation_id == conversation
    row = rows.conversation(conversation)
    assert row["status"] == "FAILED" and row["reason"] == f"quota_exceeded:{which}"
    assert row["started_at"] is None
    assert not (tmp_path / "ran").exists()  # the agent never ran
    assert rows.task_status(task) == "failed"
    escalations = rows.escalations("quota_exceeded")
    assert len(escalations) == 1 and escalations[0]["subject_id"] == conversation
    assert rows.events("conversation.failed")


async def test_under_quota_runs(tmp_path: Path) -> None:
    """The control of the test above, so a quota check that refuses everything is caught."""
    write_profiles(tmp_path, {"marker": script_profile(marker_agent(tmp_path))})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="marker", tokens=1000, cost=1.0, runs=2)
    rows.task(agent)
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "SUCCEEDED"
    assert (tmp_path / "ran").read_text() == "ran\n"


# ------------------------------------------------------------------ mission bounds


@pytest.mark.parametrize(
    ("spent", "which"),
    [({"cost": 10.0}, "cost"), ({"tokens": 500_000}, "tokens")],
)
async def test_mission_bound_reached_refuses_the_run(
    tmp_path: Path, spent: dict[str, float], which: str
) -> None:
    write_profiles(tmp_path, {"marker": script_profile(marker_agent(tmp_path))})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="marker")
    mission = rows.mission(cost=10.0, tokens=500_000)
    # the task first: pre-flight refuses a new task of a mission at its bound
    task, conversation = rows.task(agent, mission_id=mission, mission_step=1)
    rows.spend(mission, **spent)  # type: ignore[arg-type]
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and not outcome.ran
    row = rows.conversation(conversation)
    assert row["status"] == "FAILED" and row["reason"] == f"mission_bound:{which}"
    assert not (tmp_path / "ran").exists()
    assert rows.task_status(task) == "failed"
    assert len(rows.escalations("mission_bound")) == 1


async def test_mission_bound_counts_the_usage_ledger(tmp_path: Path) -> None:
    """Spending is the larger of the running totals and the ledger: a mission whose
    ``spent_*`` columns lag behind its ledger rows is still refused."""
    write_profiles(tmp_path, {"marker": script_profile(marker_agent(tmp_path))})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="marker")
    mission = rows.mission(cost=1.0)
    _, conversation = rows.task(agent, mission_id=mission, mission_step=1)
    rows.execute(  # after the task: pre-flight counts the ledger too
        "INSERT INTO usage_ledger (agent_id, mission_id, day, tokens, cost_usd, created_at)"
        " VALUES (?, ?, '2000-01-01', 1, 1.5, ?)",
        (agent, mission, now_iso()),
    )
    async with running_worker(settings) as worker:
        await worker.run_once()
    assert rows.conversation(conversation)["reason"] == "mission_bound:cost"


async def test_run_over_a_mission_bound_fails_the_mission_and_refuses_the_next(
    tmp_path: Path,
) -> None:
    write_profiles(tmp_path, {"demo": profile(DEMO_ARGV)})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent()
    mission = rows.mission(tokens=500_000, cost=100.0)
    big, _ = rows.task(
        agent, "big step", "DEMO:usage=400000:200000", mission_id=mission, mission_step=1
    )
    _, second = rows.task(agent, "next step", mission_id=mission, mission_step=1)
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
        assert outcome is not None and outcome.status == "SUCCEEDED"
        refused = await worker.run_once()
    mission_row = rows.one("SELECT * FROM missions WHERE id = ?", (mission,))
    assert mission_row is not None
    assert mission_row["spent_tokens"] == 600_000
    assert mission_row["spent_cost_usd"] == pytest.approx(1.2 + 3.0)
    assert mission_row["status"] == "failed"
    failed = rows.events("mission.failed")
    assert len(failed) == 1 and json.loads(failed[0]["payload"])["reason"] == "mission_bound:tokens"
    assert len(rows.escalations("mission_bound")) == 1
    assert refused is not None and not refused.ran
    assert rows.conversation(second)["reason"] == "mission_closed:failed"
    assert rows.task_status(big) == "succeeded"


async def test_run_is_stopped_when_the_mission_goes_over_meanwhile(tmp_path: Path) -> None:
    """Another run pushed the mission over its bound: this one is stopped, not finished."""
    pids = tmp_path / "pids"
    script = write_agent(
        tmp_path,
        "sleeper",
        f"""
        import os, time
        open({str(pids)!r}, "a").write(f"{{os.getpid()}}\\n")
        time.sleep(60)
        """,
    )
    write_profiles(tmp_path, {"sleeper": script_profile(script)})
    settings = make_settings(tmp_path, worker_lease_s=0.6)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="sleeper")
    mission = rows.mission(tokens=1000)
    task, conversation = rows.task(agent, mission_id=mission, mission_step=1)
    try:
        async with running_worker(settings) as worker:
            run = asyncio.create_task(worker.run_once())
            for _ in range(200):
                if read_pids(pids):
                    break
                await asyncio.sleep(0.05)
            await add_mission_spend(worker, mission, tokens=5000)  # other runs spent it
            outcome = await asyncio.wait_for(run, 10)
        assert outcome is not None
        row = rows.conversation(conversation)
        assert row["status"] == "FAILED"
        assert row["reason"] == "mission_bound:tokens (stopped while running)"
        assert rows.task_status(task) == "failed"
        subjects = {(e["subject_type"], e["subject_id"]) for e in rows.escalations("mission_bound")}
        # the stopped run, and the mission (over its bound, now failed)
        assert subjects == {("conversation", conversation), ("mission", mission)}
        assert rows.value("SELECT status FROM missions WHERE id = ?", (mission,)) == "failed"
        assert wait_gone(read_pids(pids)) == []
    finally:
        kill_all(read_pids(pids))


# ------------------------------------------------------------------ circuit breaker


async def test_circuit_opens_after_failures_and_refuses_the_next_run(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    script = write_agent(
        tmp_path,
        "failing",
        f"""
        import sys
        open({str(calls)!r}, "a").write("x")
        emit("boom", error=True)
        sys.exit(3)
        """,
    )
    write_profiles(tmp_path, {"failing": script_profile(script)})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="failing")
    conversations = [rows.task(agent, f"t{i}")[1] for i in range(4)]

    async with running_worker(settings, breaker_failures=3) as worker:
        for _ in range(3):
            outcome = await worker.run_once()
            assert outcome is not None and outcome.status == "FAILED" and outcome.ran
        refused = await worker.run_once()
        await worker.write_heartbeat()
        state = rows.heartbeat_state(worker.id)

    assert calls.read_text() == "xxx"  # the fourth run never started
    assert refused is not None and not refused.ran
    last = rows.conversation(conversations[3])
    assert last["status"] == "FAILED" and last["reason"] == "circuit_open"
    assert rows.conversation(conversations[0])["exit_code"] == 3
    kinds = [e["kind"] for e in rows.escalations()]
    assert kinds.count("circuit_open") == 2  # one when it opened, one for the refused run
    opened = rows.events("runner.circuit_opened")
    assert len(opened) == 1 and json.loads(opened[0]["payload"])["name"] == "failing"
    assert state["circuits"]["failing"]["state"] == "open"


async def test_half_open_trial_success_closes_the_circuit(tmp_path: Path) -> None:
    write_profiles(tmp_path, {"demo": profile(DEMO_ARGV)})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent()
    rows.task(agent, "one", "DEMO:fail")
    _, good = rows.task(agent, "two")
    async with running_worker(settings, breaker_failures=1, breaker_cool_down_s=0.0) as worker:
        failed = await worker.run_once()
        assert failed is not None and failed.status == "FAILED"
        assert worker.breakers.get("demo").state.value == "half_open"
        trial = await worker.run_once()
        assert trial is not None and trial.status == "SUCCEEDED"
        assert worker.breakers.get("demo").state.value == "closed"
    assert rows.conversation(good)["status"] == "SUCCEEDED"
    assert len(rows.events("runner.circuit_closed")) == 1


# ------------------------------------------------------------------ wall clock, output cap


async def test_hanging_agent_times_out_and_leaves_nothing_running(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = write_agent(
        tmp_path,
        "hang",
        f"""
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pids)!r}, "a").write(f"{{os.getpid()}}\\n{{child.pid}}\\n")
        time.sleep(60)
        """,
    )
    write_profiles(tmp_path, {"hang": script_profile(script, wall_clock_seconds=1.0)})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="hang")
    task, conversation = rows.task(agent)
    try:
        async with running_worker(settings) as worker:
            outcome = await asyncio.wait_for(worker.run_once(), 15)
        assert outcome is not None and outcome.status == "FAILED"
        row = rows.conversation(conversation)
        assert row["reason"] == "timeout: wall-clock limit of 1 s reached"
        assert rows.task_status(task) == "failed"
        assert len(rows.escalations("run_timeout")) == 1
        started = read_pids(pids)
        assert len(started) == 2
        assert wait_gone(started) == [], [p for p in started if alive(p)]
    finally:
        kill_all(read_pids(pids))


async def test_flooding_agent_is_truncated_with_the_marker(tmp_path: Path) -> None:
    write_profiles(tmp_path, {"demo": profile(DEMO_ARGV, stdout_cap_bytes=100_000)})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent()
    _, conversation = rows.task(agent, "flood", "DEMO:flood=3000000")
    async with running_worker(settings) as worker:
        outcome = await asyncio.wait_for(worker.run_once(), 20)
    assert outcome is not None and outcome.status == "FAILED"
    row = rows.conversation(conversation)
    assert row["truncated"] == 1
    assert row["reason"] == "output_cap: stdout exceeded 100000 bytes"
    assert row["transcript"].endswith("\n[TRUNCATED: output exceeded 100000 bytes]")
    assert len(row["transcript"]) < 100_000  # an excerpt, never the whole flood
    assert "demo flood" in row["transcript"]
    assert len(rows.escalations("output_cap")) == 1
