"""Time from process start to READY, and idle memory, of the API and of the worker.

    .venv/bin/python bench/bench_startup_memory.py [--starts 5]

``missionctl serve`` and ``missionctl worker`` are started with a NOTIFY_SOCKET
datagram socket standing in for systemd (as the unit runs them): the time from
``Popen`` to the ``READY=1`` datagram is measured, for a first start on an empty
database (it migrates) and for restarts. Idle memory is the resident set (RSS,
and the unique set USS: what stopping the process would give back) three seconds
after READY, and for the API again after 300 ordinary requests (lazily built
parts are built by then), with ``MALLOC_ARENA_MAX=2`` as the units set it
(``--malloc-arena-max ''`` for glibc's default). Then the floors: the RSS of a
fresh interpreter that loaded only the runtime and the libraries, step by step.
Plain lines, no asserts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import psutil
from _benchlib import env_for, machine, median, migrate_and_tokens, start_server

SETTLE_S = 3.0

# What the processes load before the first module of the app: RSS of a fresh
# interpreter after each step (where the idle memory goes, docs/performance.md).
FLOORS: tuple[tuple[str, str], ...] = (
    ("bare Python", "pass"),
    ("+ asyncio (loads ssl and OpenSSL)", "import asyncio"),
    (
        "+ pydantic, pydantic-settings, aiosqlite (the worker's floor)",
        "import asyncio, aiosqlite, pydantic, pydantic_settings",
    ),
    (
        "+ the settings object, loaded",
        "import asyncio, aiosqlite\nfrom app.core.settings import load_settings\nload_settings()",
    ),
    (
        "+ FastAPI, Starlette, uvicorn + httptools, pydantic.v1 (the API's floor)",
        "import asyncio, aiosqlite\nfrom app.core.settings import load_settings\nload_settings()\n"
        "import fastapi, uvicorn, uvicorn.protocols.http.httptools_impl, uvicorn.lifespan.on\n"
        "import fastapi.openapi.utils, pydantic.v1  # FastAPI loads it when routes are added",
    ),
)


def memory(pid: int) -> tuple[float, float]:
    process = psutil.Process(pid)
    rss = process.memory_info().rss / 2**20
    uss = process.memory_full_info().uss / 2**20
    return rss, uss


def floor_rss(code: str, env: dict[str, str]) -> float:
    """RSS (MB) of a fresh interpreter that ran ``code``."""
    probe = f"{code}\nprint(open('/proc/self/statm').read().split()[1])"
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    return int(result.stdout.split()[-1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def figures(label: str, values: list[float]) -> str:
    return (
        f"{label}: median {median(values):.3f} s, min {min(values):.3f} s,"
        f" max {max(values):.3f} s ({len(values)} starts)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument(
        "--malloc-arena-max",
        default="2",
        help="MALLOC_ARENA_MAX of the processes, as the systemd units set it ('' for glibc's)",
    )
    args = parser.parse_args()
    print(f"machine: {machine()}")
    serve = [sys.executable, "-m", "app.cli", "serve"]
    worker = [sys.executable, "-m", "app.cli", "worker", "--name", "bench"]

    with tempfile.TemporaryDirectory(prefix="mc-bench-start-") as name:
        folder = Path(name)
        env = env_for(folder, MC_LOG_LEVEL="WARNING")
        env.pop("MALLOC_ARENA_MAX", None)
        if args.malloc_arena_max:
            env["MALLOC_ARENA_MAX"] = args.malloc_arena_max
        print(f"MALLOC_ARENA_MAX={env.get('MALLOC_ARENA_MAX', '(unset)')}")
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
        for label, code in FLOORS:
            values = [floor_rss(code, env) for _ in range(3)]
            print(f"floor, {label}: RSS {median(values):.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
