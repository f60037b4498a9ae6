"""Durability of ``missionctl worker`` under ``kill -9`` mid-run (F11, F19).

A real worker process runs a slow fake agent; the worker is killed with SIGKILL
while the agent runs (no shutdown code of the worker runs at all), then started
again with the same name. Its conversation must be recovered, never lost and
never duplicated:

* killed once: the interrupted conversation is FAILED ("worker restarted during
  the run") and exactly one new conversation is queued for the task, which the
  restarted worker runs to SUCCEEDED; the task succeeds; no run is left QUEUED or
  IN_PROGRESS;
* killed again during that second run: the task is not queued a third time: it
  fails with a ``worker_restart`` escalation.

The fake agent sleeps on its first ``SLOW_RUNS`` starts and answers at once
afterwards (it counts its starts in a file), so the test is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.support.processes import kill_all, read_pids
from tests.support.worker import (
    Rows,
    script_profile,
    stop_process,
    wait_for,
    worker_process,
    write_agent,
    write_profiles,
)

NAME = "durable"


def slow_then_quick(tmp_path: Path, slow_runs: int) -> Path:
    starts = tmp_path / "starts"
    return write_agent(
        tmp_path,
        "slow_then_quick",
        f"""
        import os, time
        with open({str(starts)!r}, "a") as handle:
            handle.write(f"{{os.getpid()}}\\n")
        started = len(open({str(starts)!r}).read().split())
        if started <= {slow_runs}:
            time.sleep(60)
        emit("done on start " + str(started))
        """,
    )


def kill9(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def in_progress_with_agent(rows: Rows, task: int, starts: Path, expected_starts: int) -> bool:
    running = rows.value(
        "SELECT count(*) FROM conversations WHERE task_id = ? AND status = 'IN_PROGRESS'", (task,)
    )
    return running == 1 and len(read_pids(starts)) >= expected_starts


def conversations(rows: Rows, task: int) -> list[tuple[str, str | None, int]]:
    return [
        (str(r["status"]), r["reason"], int(r["attempt"]))
        for r in rows.all(
            "SELECT status, reason, attempt FROM conversations WHERE task_id = ? ORDER BY id",
            (task,),
        )
    ]


def setup(tmp_path: Path, slow_runs: int) -> tuple[Rows, int]:
    write_profiles(tmp_path, {"slow": script_profile(slow_then_quick(tmp_path, slow_runs))})
    rows = Rows(tmp_path / "mc.db")
    agent = rows.agent(profile="slow")
    task, _ = rows.task(agent, "survive a crash")
    return rows, task


def test_a_worker_killed_mid_run_recovers_its_conversation_once(tmp_path: Path) -> None:
    rows, task = setup(tmp_path, slow_runs=1)
    starts = tmp_path / "starts"
    first = worker_process(tmp_path, "--name", NAME)
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: in_progress_with_agent(rows, task, starts, 1), timeout=30, what="a run")
        kill9(first)
        # the dead worker's run is still IN_PROGRESS: nothing else touched it
        assert [c[0] for c in conversations(rows, task)] == ["IN_PROGRESS"]
        second = worker_process(tmp_path, "--name", NAME)
        wait_for(lambda: rows.task_status(task) == "succeeded", timeout=30, what="the re-run")
        assert conversations(rows, task) == [
            ("FAILED", "worker restarted during the run", 1),
            ("SUCCEEDED", None, 2),
        ]
        assert len(read_pids(starts)) == 2  # run once more, not twice more
        assert not rows.escalations("worker_restart")
        row = rows.one(
            "SELECT transcript FROM conversations WHERE task_id = ? AND status = 'SUCCEEDED'",
            (task,),
        )
        assert row is not None and "done on start 2" in str(row["transcript"])
        output = stop_process(second)
        assert "Traceback" not in output
    finally:
        for process in (first, second):
            if process is not None:
                stop_process(process)
        kill_all(read_pids(starts))


def test_a_run_killed_twice_fails_its_task_instead_of_looping(tmp_path: Path) -> None:
    rows, task = setup(tmp_path, slow_runs=2)
    starts = tmp_path / "starts"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for expected_starts in (1, 2):
            process = worker_process(tmp_path, "--name", NAME)
            processes.append(process)
            wait_for(
                lambda n=expected_starts: in_progress_with_agent(rows, task, starts, n),
                timeout=30,
                what=f"run {expected_starts}",
            )
            kill9(process)
        processes.append(worker_process(tmp_path, "--name", NAME))
        wait_for(lambda: rows.task_status(task) == "failed", timeout=30, what="the task to fail")
        assert conversations(rows, task) == [
            ("FAILED", "worker restarted during the run", 1),
            ("FAILED", "worker restarted during the run", 2),
        ]
        assert len(rows.escalations("worker_restart")) == 1
        assert len(read_pids(starts)) == 2
    finally:
        for process in processes:
            stop_process(process)
        kill_all(read_pids(starts))
