"""What an idle ``missionctl worker`` costs: resident memory and bytes written.

Run from the repository root::

    python bench/bench_worker_idle.py [--window SECONDS] [--runs N]

Starts a real worker on a fresh database in a temporary directory, waits until it
is up (its heartbeat row exists), then prints its RSS and, over a bounded window,
the bytes it wrote (``/proc/<pid>/io``) extrapolated to one hour: on an SD card
the idle write rate is what wears it. Then it queues ``--runs`` demo conversations
and prints the median time from QUEUED to SUCCEEDED as the worker sees it (claim,
prompt, spawn of the confined demo agent, parse, store). Plain lines, no asserts.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MC_", "NOTIFY_", "WATCHDOG"))}
    env.update(
        {
            "MC_DATABASE_PATH": str(tmp / "mc.db"),
            "MC_STATE_DIR": str(tmp / "state"),
            "MC_ENV_FILE": str(tmp / "no-env-file"),
            "MC_PROFILES_PATH": str(tmp / "no-profiles.toml"),  # the bundled demo profile
            "MC_LOG_LEVEL": "WARNING",
        }
    )
    return env


def _io(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/io") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            values[key.strip()] = int(value)
    return values


def _seed(db: Path, runs: int) -> list[int]:
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    try:
        now = "2000-01-01T00:00:00.000000Z"
        agent = conn.execute(
            "INSERT INTO agents (name, role, model, quota_tokens_per_day, quota_cost_usd_per_day,"
            " quota_runs_per_day, created_at, updated_at)"
            " VALUES ('bench', 'bench', 'demo-1', 100000000, 1000, 100000, ?, ?)",
            (now, now),
        ).lastrowid
        ids = []
        for index in range(runs):
            task = conn.execute(
                "INSERT INTO tasks (title, description, agent_id, created_by, created_at,"
                " updated_at) VALUES (?, 'benchmark run', ?, 'bench', ?, ?)",
                (f"bench {index}", agent, now, now),
            ).lastrowid
            ids.append(task)
        return ids
    finally:
        conn.close()


def _queue(db: Path, task: int) -> int:
    conn = sqlite3.connect(db, isolation_level=None, timeout=10)
    try:
        now = "2000-01-01T00:00:00.000000Z"
        cursor = conn.execute(
            "INSERT INTO conversations (task_id, agent_id, status, created_at, updated_at)"
            " SELECT id, agent_id, 'QUEUED', ?, ? FROM tasks WHERE id = ?",
            (now, now, task),
        )
        return int(cursor.lastrowid or 0)
    finally:
        conn.close()


def _status(db: Path, conversation: int) -> tuple[str, str | None, str | None]:
    conn = sqlite3.connect(db, timeout=10)
    try:
        row = conn.execute(
            "SELECT status, started_at, finished_at FROM conversations WHERE id = ?",
            (conversation,),
        ).fetchone()
        return row[0], row[1], row[2]
    finally:
        conn.close()


def _parse(stamp: str) -> float:
    from datetime import datetime

    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=20.0, help="seconds of idle measured")
    parser.add_argument("--runs", type=int, default=15, help="demo runs timed afterwards")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mc-bench-worker-") as name:
        tmp = Path(name)
        env = _env(tmp)
        subprocess.run(
            [sys.executable, "-m", "app.cli", "db", "migrate"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        db = tmp / "mc.db"
        tasks = _seed(db, args.runs)
        started = time.monotonic()
        worker = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--name", "bench"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                conn = sqlite3.connect(db, timeout=10)
                try:
                    up = conn.execute("SELECT count(*) FROM worker_heartbeats").fetchone()[0]
                finally:
                    conn.close()
                if up or time.monotonic() - started > 60:
                    break
                time.sleep(0.05)
            up_after = time.monotonic() - started
            print(f"worker start-up (process start to heartbeat row): {up_after:.2f} s")
            time.sleep(2.0)  # let start-up settle (imports, migrations, first writes)
            process = psutil.Process(worker.pid)
            rss_mb = process.memory_info().rss / 1024 / 1024
            uss_mb = process.memory_full_info().uss / 1024 / 1024
            print(f"idle RSS: {rss_mb:.1f} MB (USS {uss_mb:.1f} MB)")
            before, t0 = _io(worker.pid), time.monotonic()
            cpu0 = process.cpu_times()
            time.sleep(args.window)
            after, elapsed = _io(worker.pid), time.monotonic() - t0
            cpu1 = process.cpu_times()
            per_hour = 3600.0 / elapsed
            written = after["write_bytes"] - before["write_bytes"]
            wchar = after["wchar"] - before["wchar"]
            print(f"idle window: {elapsed:.1f} s")
            print(
                "idle bytes written to storage per hour (write_bytes):"
                f" {written * per_hour / 1e6:.2f} MB"
            )
            print(f"idle bytes passed to write() per hour (wchar): {wchar * per_hour / 1e6:.2f} MB")
            busy = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
            print(f"idle CPU: {100 * busy / elapsed:.2f} % of one core")

            durations: list[float] = []
            worker_side: list[float] = []
            for task in tasks:
                conversation = _queue(db, task)
                queued = time.monotonic()
                while True:
                    status, begun, ended = _status(db, conversation)
                    if status not in ("QUEUED", "IN_PROGRESS"):
                        break
                    time.sleep(0.005)
                durations.append((time.monotonic() - queued) * 1000)
                if status == "SUCCEEDED" and begun and ended:
                    worker_side.append((_parse(ended) - _parse(begun)) * 1000)
            if worker_side:
                print(
                    f"demo run, claim to SUCCEEDED stored (median of {len(worker_side)}):"
                    f" {statistics.median(worker_side):.0f} ms"
                )
                print(
                    f"demo run, QUEUED to SUCCEEDED incl. up to 1 s idle poll (median):"
                    f" {statistics.median(durations):.0f} ms"
                )
            print(f"RSS after {len(tasks)} runs: {process.memory_info().rss / 1024 / 1024:.1f} MB")
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
