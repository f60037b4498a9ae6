"""Time from process start to READY, and idle memory, of the API and of the worker.

    .venv/bin/python bench/bench_startup_memory.py [--starts 5]

``missionctl serve`` and ``missionctl worker`` are started with a NOTIFY_SOCKET
datagram socket standing in for systemd (as the unit runs them): the time from
``Popen`` to the ``READY=1`` datagram is measured, for a first start on an empty
database (it migrates) and for restarts. Idle memory is the resident set (RSS,
and the unique set USS: what stopping the process would give back) three seconds
after READY, and for the API again after 300 ordinary requests (lazily built
parts are built by then). Plain lines, no asserts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import psutil
from _benchlib import env_for, machine, median, migrate_and_tokens, start_server

SETTLE_S = 3.0


def memory(pid: int) -> tuple[float, float]:
    process = psutil.Process(pid)
    rss = process.memory_info().rss / 2**20
    uss = process.memory_full_info().uss / 2**20
    return rss, uss


def figures(label: str, values: list[float]) -> str:
    return (
        f"{label}: median {median(values):.3f} s, min {min(values):.3f} s,"
        f" max {max(values):.3f} s ({len(values)} starts)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    serve = [sys.executable, "-m", "app.cli", "serve"]
    worker = [sys.executable, "-m", "app.cli", "worker", "--name", "bench"]

    with tempfile.TemporaryDirectory(prefix="mc-bench-start-") as name:
        folder = Path(name)
        env = env_for(folder, MC_LOG_LEVEL="WARNING")
        with start_server(serve, folder, env) as server:
            print(f"API first start to READY (migrates an empty database): {server.ready_s:.3f} s")
        restarts: list[float] = []
        api_idle: list[tuple[float, float]] = []
        api_warm: tuple[float, float] | None = None
        token = migrate_and_tokens(folder, {"reader": "read"})["reader"]
        for index in range(args.starts):
            with start_server(serve, folder, env) as server:
                restarts.append(server.ready_s)
                time.sleep(SETTLE_S)
                api_idle.append(memory(server.process.pid))
                if index == 0:
                    with httpx.Client(base_url=server.base, timeout=10) as client:
                        headers = {"Authorization": f"Bearer {token}"}
                        for number in range(300):
                            path = "/api/tasks" if number % 2 else "/healthz"
                            client.get(path, headers=headers)
                    time.sleep(1.0)
                    api_warm = memory(server.process.pid)
        print(figures("API restart to READY", restarts))
        print(
            f"API idle RSS: {median([m[0] for m in api_idle]):.1f} MB"
            f" (USS {median([m[1] for m in api_idle]):.1f} MB), {SETTLE_S:.0f} s after READY"
        )
        if api_warm:
            print(f"API RSS after 300 requests: {api_warm[0]:.1f} MB (USS {api_warm[1]:.1f} MB)")

        worker_starts: list[float] = []
        worker_idle: list[tuple[float, float]] = []
        for _ in range(args.starts):
            with start_server(worker, folder, env) as process:
                worker_starts.append(process.ready_s)
                time.sleep(SETTLE_S)
                worker_idle.append(memory(process.process.pid))
        print(figures("worker start to READY", worker_starts))
        print(
            f"worker idle RSS: {median([m[0] for m in worker_idle]):.1f} MB"
            f" (USS {median([m[1] for m in worker_idle]):.1f} MB), {SETTLE_S:.0f} s after READY"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
