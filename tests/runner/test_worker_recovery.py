"""Cancellation from the API, heartbeat recovery (F19), restart recovery, shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from app.core.clock import utcnow
from app.runner.heartbeat import WorkerIdentityError, worker_id
from tests.support.processes import kill_all, read_pids, wait_gone
from tests.support.worker import (
    Rows,
    cancel_task,
    claimed_run,
    make_settings,
    running_worker,
    script_profile,
    stop_process,
    wait_for,
    worker_process,
    write_agent,
    write_profiles,
)


def sleeper(tmp_path: Path, pids: Path, seconds: int = 60) -> Path:
    return write_agent(
        tmp_path,
        "sleeper",
        f"""
        import os, time
        open({str(pids)!r}, "a").write(f"{{os.getpid()}}\\n")
        time.sleep({seconds})
        emit("woke up")
        """,
    )


# ------------------------------------------------------------------ cancel


async def test_cancel_from_the_api_kills_the_run(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    write_profiles(tmp_path, {"sleeper": script_profile(sleeper(tmp_path, pids))})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="sleeper")
    task, conversation = rows.task(agent)
    try:
        async with running_worker(settings) as worker:
            run = asyncio.create_task(worker.run_once())
            for _ in range(200):
                if read_pids(pids):
                    break
                await asyncio.sleep(0.05)
            assert read_pids(pids), "the agent did not start"
            await worker.write_heartbeat()  # what the heartbeat loop of serve() does
            assert rows.heartbeat_state(worker.id)["running"] == [conversation]
            await cancel_task(worker, task)  # what the API does
            started = time.monotonic()
            outcome = await asyncio.wait_for(run, 10)
            assert time.monotonic() - started < 3
        assert outcome is not None and outcome.status == "CANCELLED"
        assert wait_gone(read_pids(pids)) == []
        row = rows.conversation(conversation)
        assert row["status"] == "CANCELLED" and row["reason"] == "task cancelled by user:alice"
        assert rows.task_status(task) == "cancelled"
        assert not rows.events("conversation.failed")
        assert worker.breakers.get("sleeper").snapshot().consecutive_failures == 0
    finally:
        kill_all(read_pids(pids))


async def test_lease_and_heartbeat_are_renewed_while_running(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    write_profiles(tmp_path, {"sleeper": script_profile(sleeper(tmp_path, pids, seconds=2))})
    settings = make_settings(tmp_path, worker_lease_s=0.6)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="sleeper")
    _, conversation = rows.task(agent)
    try:
        async with running_worker(settings) as worker:
            run = asyncio.create_task(worker.run_once())
            await asyncio.sleep(0.5)
            first = rows.conversation(conversation)
            await asyncio.sleep(0.8)
            second = rows.conversation(conversation)
            outcome = await asyncio.wait_for(run, 10)
        assert first["status"] == second["status"] == "IN_PROGRESS"
        assert second["heartbeat_at"] > first["heartbeat_at"]
        assert second["lease_expires_at"] > first["lease_expires_at"] > first["heartbeat_at"]
        assert outcome is not None and outcome.status == "SUCCEEDED"
    finally:
        kill_all(read_pids(pids))


# ------------------------------------------------------------------ stale runs


async def test_stale_runs_are_failed_once_with_an_escalation(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, stale_run_minutes=30)
    rows = Rows(settings.database_path)
    agent = rows.agent()
    stale_task, _ = rows.task(agent)
    dependent, _ = rows.task(agent, depends_on=(stale_task,))
    fresh_task, _ = rows.task(agent)
    old = utcnow() - timedelta(minutes=45)
    path = settings.database_path
    stale = await claimed_run(path, stale_task, agent, "elsewhere:w", at=old)
    fresh = await claimed_run(path, fresh_task, agent, "elsewhere:w", at=utcnow())

    async with running_worker(settings) as worker:  # start-up sweeps once
        assert await worker.sweep_stale() == []  # idempotent: nothing left to fail
    async with running_worker(settings, name="other") as other:
        assert await other.sweep_stale() == []  # a second worker neither

    row = rows.conversation(stale)
    assert row["status"] == "FAILED" and row["finished_at"]
    assert row["reason"] == "stale: no heartbeat for 45 minutes"
    assert rows.task_status(stale_task) == "failed"
    assert rows.task_status(dependent) == "blocked"
    escalations = rows.escalations("stale_run")
    assert len(escalations) == 1 and escalations[0]["subject_id"] == stale
    assert json.loads(escalations[0]["details"])["lease_owner"] == "elsewhere:w"
    assert rows.conversation(fresh)["status"] == "IN_PROGRESS"
    assert rows.task_status(fresh_task) == "in_progress"


# ------------------------------------------------------------------ restart recovery


async def test_restart_recovers_own_orphans_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent()
    task, _ = rows.task(agent)
    others, _ = rows.task(agent)
    me = worker_id("t")
    orphan = await claimed_run(settings.database_path, task, agent, me, at=utcnow())
    foreign = await claimed_run(settings.database_path, others, agent, "otherhost:t", at=utcnow())

    async with running_worker(settings) as worker:
        requeued = rows.one(
            "SELECT * FROM conversations WHERE task_id = ? AND status = 'QUEUED'", (task,)
        )
        assert requeued is not None and requeued["id"] != orphan
        assert requeued["attempt"] == 1  # carried; the claim makes it 2
        old = rows.conversation(orphan)
        assert old["status"] == "FAILED" and old["reason"] == "worker restarted during the run"
        assert rows.conversation(foreign)["status"] == "IN_PROGRESS"  # not ours
        # the re-queued run runs (and only it: the task has one conversation running)
        outcome = await worker.run_once()
        assert outcome is not None and outcome.conversation_id == requeued["id"]
        assert outcome.status == "SUCCEEDED"
        assert rows.conversation(requeued["id"])["attempt"] == 2
    assert rows.task_status(task) == "succeeded"
    assert not rows.escalations("worker_restart")


async def test_a_run_interrupted_twice_is_not_requeued_again(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent()
    task, _ = rows.task(agent)
    orphan = await claimed_run(
        settings.database_path, task, agent, worker_id("t"), at=utcnow(), attempt=2
    )
    async with running_worker(settings) as worker:
        assert await worker.run_once() is None
    assert rows.conversation(orphan)["status"] == "FAILED"
    # the first attempt's run and the orphan: no third
    statuses = rows.all("SELECT status FROM conversations WHERE task_id = ? ORDER BY id", (task,))
    assert [s[0] for s in statuses] == ["FAILED", "FAILED"]
    assert rows.task_status(task) == "failed"
    assert len(rows.escalations("worker_restart")) == 1


async def test_a_second_process_with_the_same_worker_id_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    Rows(settings.database_path)
    async with running_worker(settings):
        with pytest.raises(WorkerIdentityError):
            async with running_worker(settings):
                pass
    async with running_worker(settings):  # released on close
        pass


async def test_the_worker_refuses_to_start_when_limits_cannot_be_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A seccomp filter denying setrlimit would leave agents unconfined (or every run
    failing obscurely): the worker says so and does not start."""
    from app.runner import worker as worker_module

    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent()
    _, conversation = rows.task(agent)
    monkeypatch.setattr(worker_module, "check_rlimits_settable", lambda: "denied by seccomp")
    with pytest.raises(worker_module.WorkerStartError, match="denied by seccomp"):
        async with running_worker(settings):
            pass
    assert conversation is not None
    assert rows.conversation(conversation)["status"] == "QUEUED"


# ------------------------------------------------------------------ the process


class Notifications:
    """A stand-in for systemd's NOTIFY_SOCKET, drained by a thread (a full socket
    queue would block the sender, as it would with a stuck systemd)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._done.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def wait(self, wanted: str, timeout: float) -> None:
        wait_for(
            lambda: any(wanted in m for m in self.messages),
            timeout=timeout,
            what=f"{wanted} (got {self.messages[-5:]})",
        )

    def close(self) -> None:
        self._done.set()
        self._thread.join(2)
        self.sock.close()


def test_sigterm_during_a_run_stops_it_and_requeues_it(tmp_path: Path) -> None:
    """A real worker process: READY=1 and a heartbeat row once it runs; on SIGTERM,
    STOPPING=1, the run in flight is killed after the grace, recorded as interrupted
    and queued again, and the process exits 0."""
    pids = tmp_path / "pids"
    write_profiles(tmp_path, {"sleeper": script_profile(sleeper(tmp_path, pids))})
    rows = Rows(tmp_path / "mc.db")
    agent = rows.agent(profile="sleeper")
    task, conversation = rows.task(agent)
    notifications = Notifications(tmp_path / "notify.sock")
    process = worker_process(
        tmp_path,
        "--name",
        "sig",
        "--stop-grace",
        "0.5",
        NOTIFY_SOCKET=str(tmp_path / "notify.sock"),
        WATCHDOG_USEC="400000",
    )
    try:
        notifications.wait("READY=1", 30)
        wait_for(lambda: read_pids(pids), timeout=20, what="the agent to start")
        notifications.wait("WATCHDOG=1", 5)
        wait_for(
            lambda: conversation in rows.heartbeat_state(worker_id("sig"))["running"],
            timeout=5,
            what="the heartbeat to show the run",
        )
        process.send_signal(signal.SIGTERM)
        notifications.wait("STOPPING=1", 5)
        assert process.wait(timeout=15) == 0
        output = stop_process(process)
        assert "Traceback" not in output
        assert wait_gone(read_pids(pids)) == []
        row = rows.conversation(conversation)
        assert row["status"] == "FAILED" and row["reason"] == "worker stopped during the run"
        again = rows.one(
            "SELECT * FROM conversations WHERE task_id = ? AND status = 'QUEUED'", (task,)
        )
        assert again is not None and again["attempt"] == 1
        assert rows.task_status(task) == "in_progress"
        assert rows.heartbeat_state(worker_id("sig"))["running"] == []
    finally:
        stop_process(process)
        kill_all(read_pids(pids))
        notifications.close()
