"""Two real ``missionctl worker`` processes on one database never run one conversation
twice (F11, F29). Every run appends a line to a shared journal, written by the agent
itself, so a double run shows up whatever the database says."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from app.runner.heartbeat import worker_id
from tests.support.worker import (
    Rows,
    script_profile,
    stop_process,
    wait_for,
    worker_process,
    write_agent,
    write_profiles,
)

JOBS = 20


def test_two_worker_processes_run_each_conversation_exactly_once(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    script = write_agent(
        tmp_path,
        "journal",
        f"""
        import os, sys, time
        prompt = sys.stdin.read()
        title = next(l for l in prompt.splitlines() if l.startswith("Title: "))
        with open({str(journal)!r}, "a") as handle:
            handle.write(f"{{title[7:]}} {{os.getppid()}}\\n")
        time.sleep(0.05)
        emit("done")
        """,
    )
    write_profiles(tmp_path, {"journal": script_profile(script)})
    rows = Rows(tmp_path / "mc.db")
    agent = rows.agent(profile="journal")
    # every job waits for one task whose run another worker holds; when it succeeds,
    # the jobs' runs are queued at once (one transaction)
    gate, _ = rows.task(agent, "gate", status="in_progress")
    for i in range(JOBS):
        rows.task(agent, f"job-{i:02d}", depends_on=(gate,))

    workers = [worker_process(tmp_path, "--name", name) for name in ("a", "b")]
    try:
        # both are up (heartbeat rows) before any work exists: they compete for all of it
        wait_for(
            lambda: rows.value("SELECT count(*) FROM worker_heartbeats") == 2,
            timeout=30,
            what="both workers to start",
        )
        rows.end_run(gate)
        started = time.monotonic()
        wait_for(
            lambda: (
                rows.value(
                    "SELECT count(*) FROM conversations WHERE status IN ('QUEUED', 'IN_PROGRESS')"
                )
                == 0
            ),
            timeout=60,
            what="every conversation to end",
        )
        elapsed = time.monotonic() - started
    finally:
        outputs = [stop_process(process) for process in workers]
    for output in outputs:
        assert "Traceback" not in output, output

    lines = [line.split() for line in journal.read_text().splitlines()]
    runs = Counter(title for title, _ in lines)
    assert runs == Counter({f"job-{i:02d}": 1 for i in range(JOBS)}), runs
    statuses = rows.all(
        "SELECT status, attempt, lease_owner FROM conversations WHERE task_id != ?", (gate,)
    )
    assert len(statuses) == JOBS
    assert {(s["status"], s["attempt"]) for s in statuses} == {("SUCCEEDED", 1)}
    per_worker = Counter(s["lease_owner"] for s in statuses)
    assert set(per_worker) <= {worker_id("a"), worker_id("b")}
    assert rows.value("SELECT count(*) FROM usage_ledger") == JOBS
    assert len(per_worker) == 2  # both took part
    # each run's parent (the agent is exec'd by prlimit) is one of the two workers
    assert {int(pid) for _, pid in lines} <= {w.pid for w in workers}
    print(f"{JOBS} runs in {elapsed:.2f} s; per worker: {dict(per_worker)}")
