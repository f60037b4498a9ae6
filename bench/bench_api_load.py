"""Throughput and latency of the main read and write endpoints on one server process.

    .venv/bin/python bench/bench_api_load.py [--seconds 8] [--concurrency 16]

Starts the real server (``bench/_serve_with_bare.py``: ``missionctl serve`` plus a
raw ASGI ``/bench/bare`` and a plain FastAPI ``/bench/route`` in the same process)
on a loopback port, with the in-app rate limits opened up, seeds 50 tasks, and
measures at concurrency 16 (keep-alive connections):

* ``GET /bench/bare``, ``GET /bench/route`` and ``GET /api/tasks`` (50 items, a
  real bearer token looked up in SQLite on every request);
* ``POST /api/tasks`` (pre-flight checks, task + conversation + event + audit in
  one write transaction);

with the Python load client of ``bench/_benchlib.py`` and with ``wrk`` (one thread,
so the other core is the server's) when it is installed; then the ratios: the task
list against the bare endpoints, and task creation against raw SQLite inserts
(one row per transaction, WAL, ``synchronous=NORMAL``) on the same file system.
Plain lines, no asserts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil
from _benchlib import (
    OPEN_LIMITS,
    env_for,
    load,
    machine,
    migrate_and_tokens,
    raw_sqlite_inserts,
    request_bytes,
    seed_tasks,
    start_server,
    wrk,
    wrk_line,
)

LAUNCHER = Path(__file__).resolve().parent / "_serve_with_bare.py"
DESCRIPTION = "Summarise the open pull requests of the project and list the blocked ones. " * 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    seconds, concurrency = args.seconds, args.concurrency
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="mc-bench-api-") as name:
        folder = Path(name)
        tokens = migrate_and_tokens(
            folder, {"admin": "admin", "operator": "operate", "reader": "read"}
        )
        env = env_for(folder, **OPEN_LIMITS)
        with start_server([sys.executable, str(LAUNCHER), "serve"], folder, env) as server:
            print(f"server start to READY: {server.ready_s:.3f} s")
            agent_id = seed_tasks(server, tokens["admin"], 0)
            from _benchlib import http_json

            for number in range(50):
                http_json(
                    server,
                    "POST",
                    "/api/tasks",
                    tokens["admin"],
                    {
                        "title": f"seeded task {number}",
                        "description": DESCRIPTION,
                        "agent_id": agent_id,
                    },
                )
            process = psutil.Process(server.process.pid)
            print(f"server RSS before load: {process.memory_info().rss / 2**20:.1f} MB")

            bare = request_bytes("GET", "/bench/bare")
            route = request_bytes("GET", "/bench/route")
            listing = request_bytes("GET", "/api/tasks", tokens["reader"])
            results = {}
            for label, payload in (
                ("GET /bench/bare (raw ASGI)", bare),
                ("GET /bench/route (FastAPI route, edge middleware)", route),
                ("GET /api/tasks (50 items, bearer auth)", listing),
            ):
                result = load(
                    server.port,
                    lambda _n, p=payload: p,
                    concurrency=concurrency,
                    duration_s=seconds,
                )
                results[label] = result
                print(result.line(f"python client, c={concurrency}, {label}"))
            bare_rps, route_rps, list_rps = (r.rps for r in results.values())
            print(
                "python client ratio GET /api/tasks / raw ASGI bare:"
                f" {list_rps / bare_rps:.2f}; / FastAPI route: {list_rps / route_rps:.2f}"
            )

            wrk_results = {}
            for label, path, token in (
                ("GET /bench/bare (raw ASGI)", "/bench/bare", None),
                ("GET /bench/route (FastAPI route, edge middleware)", "/bench/route", None),
                ("GET /api/tasks (50 items, bearer auth)", "/api/tasks", tokens["reader"]),
            ):
                result = wrk(
                    f"{server.base}{path}",
                    token=token,
                    connections=concurrency,
                    duration_s=seconds,
                )
                wrk_results[label] = result
                print(wrk_line(f"wrk -t1 -c{concurrency}, {label}", result))
            bare_wrk = wrk_results["GET /bench/bare (raw ASGI)"]
            route_wrk = wrk_results["GET /bench/route (FastAPI route, edge middleware)"]
            list_wrk = wrk_results["GET /api/tasks (50 items, bearer auth)"]
            if bare_wrk and route_wrk and list_wrk:
                print(
                    f"wrk ratio GET /api/tasks / raw ASGI bare: {list_wrk.rps / bare_wrk.rps:.2f};"
                    f" / FastAPI route: {list_wrk.rps / route_wrk.rps:.2f}"
                )

            def create(number: int) -> bytes:
                body = {"title": f"bench task {number}", "agent_id": agent_id}
                return request_bytes("POST", "/api/tasks", tokens["operator"], body)

            writes = load(
                server.port, create, concurrency=concurrency, duration_s=seconds, warmup=50
            )
            print(writes.line(f"python client, c={concurrency}, POST /api/tasks"))
            body = {"title": "wrk task", "agent_id": agent_id}
            writes_wrk = wrk(
                f"{server.base}/api/tasks",
                token=tokens["operator"],
                method="POST",
                body=body,
                connections=concurrency,
                duration_s=seconds,
            )
            print(wrk_line(f"wrk -t1 -c{concurrency}, POST /api/tasks", writes_wrk))
            print(f"server RSS after load: {process.memory_info().rss / 2**20:.1f} MB")
        raw = raw_sqlite_inserts(folder)
        print(f"raw SQLite inserts (one per transaction, WAL, synchronous=NORMAL): {raw:.0f}/s")
        print(f"ratio POST /api/tasks (python client) / raw SQLite inserts: {writes.rps / raw:.3f}")
        if writes_wrk:
            print(f"ratio POST /api/tasks (wrk) / raw SQLite inserts: {writes_wrk.rps / raw:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
