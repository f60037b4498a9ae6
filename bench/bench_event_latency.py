"""Latency from an event's creation to its arrival on an open SSE stream.

Starts a real server (``python -m app.cli serve`` on a free loopback port, its
database and state in a temporary directory), opens ``/api/events/stream`` with
a one-time ticket and creates events:

* ``api``: ``COUNT`` tasks through ``POST /api/tasks`` (falls back to
  ``POST /api/agents`` when tasks cannot be created): written by the API
  process, so the in-process bus wakes the stream;
* ``worker``: ``WORKER_COUNT`` events inserted into the SQLite file by this
  process, as the worker does: found by the stream's poll (``event_poll_s``).

Latency is measured from the event's ``created_at`` (stamped by the writer
just before commit, same host clock) to the moment the reader thread parsed
it; also from just before the HTTP request was sent. Plain lines out.
Bounded: ``DEADLINE_S`` overall, loopback only.

    .venv/bin/python bench/bench_event_latency.py [count]
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from _benchlib import ROOT, cli, env_for, free_port

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
WORKER_COUNT = 200
DEADLINE_S = 180.0


def bench_env(tmp: Path) -> dict[str, str]:
    unlimited = "100000"
    return env_for(
        tmp,
        MC_LOG_LEVEL="WARNING",
        MC_RATE_LIMIT_PER_CLIENT=unlimited,
        MC_RATE_LIMIT_BURST_PER_CLIENT=unlimited,
        MC_RATE_LIMIT_PER_CREDENTIAL=unlimited,
        MC_RATE_LIMIT_BURST_PER_CREDENTIAL=unlimited,
        MC_AGENT_DEFAULT_RUNS_PER_DAY=unlimited,
        PYTHONPATH=str(ROOT),
    )


def parse_ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


class StreamReader(threading.Thread):
    """Reads the stream; notes the wall-clock arrival time of every event."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.arrivals: dict[int, tuple[float, dict[str, object]]] = {}
        self.connected = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        timeout = httpx.Timeout(10.0, read=30.0)
        with httpx.Client(timeout=timeout) as client, client.stream("GET", self.url) as response:
            if response.status_code != 200:
                print(f"stream refused: {response.status_code}", file=sys.stderr)
                self.connected.set()
                return
            event_id, data = None, ""
            for line in response.iter_lines():
                if line == ": connected":
                    self.connected.set()
                elif line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and event_id is not None:
                    self.arrivals[event_id] = (time.time(), json.loads(data))
                    event_id, data = None, ""
                if self.stop.is_set():
                    return


def report(label: str, values_ms: list[float]) -> None:
    values = sorted(values_ms)
    p95 = values[max(0, int(len(values) * 0.95) - 1)]
    print(
        f"{label}: n={len(values)} median={statistics.median(values):.2f} ms"
        f" p95={p95:.2f} ms max={values[-1]:.2f} ms"
    )


def wait_for(reader: StreamReader, wanted: set[int], deadline: float) -> None:
    while not wanted <= reader.arrivals.keys():
        if time.monotonic() > deadline:
            missing = len(wanted - reader.arrivals.keys())
            raise SystemExit(f"{missing} events did not arrive in time")
        time.sleep(0.01)


def create_events_through_api(
    client: httpx.Client, base: str, headers: dict[str, str], count: int
) -> tuple[str, list[tuple[float, int]]]:
    """(what was created, [(send time, event id)]) for ``count`` writes."""
    agent = client.post(
        f"{base}/api/agents",
        headers=headers,
        json={
            "name": "bench-agent",
            "role": "bench",
            "model": "demo",
            "quotas": {
                "tokens_per_day": 100_000_000,
                "cost_usd_per_day": 10_000,
                "runs_per_day": 100_000,
            },
        },
    )
    agent.raise_for_status()
    agent_id = agent.json()["id"]
    use_tasks = True
    sent: list[tuple[float, int]] = []
    for n in range(count):
        started = time.time()
        if use_tasks:
            response = client.post(
                f"{base}/api/tasks",
                headers=headers,
                json={"title": f"bench task {n}", "agent_id": agent_id},
            )
            if response.status_code != 201 and n == 0:
                print(f"tasks refused ({response.status_code}); creating agents instead")
                use_tasks = False
        if not use_tasks:
            started = time.time()
            response = client.post(
                f"{base}/api/agents",
                headers=headers,
                json={"name": f"bench-{n:05d}", "role": "bench", "model": "demo"},
            )
        response.raise_for_status()
        subject = int(response.json()["id"])
        sent.append((started, subject))
    return ("task" if use_tasks else "agent"), sent


def main() -> int:
    deadline = time.monotonic() + DEADLINE_S
    with tempfile.TemporaryDirectory(prefix="mc-bench-") as tmp_name:
        tmp = Path(tmp_name)
        env = bench_env(tmp)
        cli(env, "db", "migrate")
        cli(env, "first-run")  # the local admin: every token acts for a person
        token = cli(
            env, "token", "create", "--name", "bench", "--scope", "admin", "--owner", "admin"
        )
        headers = {"Authorization": f"Bearer {token}"}
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = (tmp / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            with httpx.Client(timeout=10) as client:
                while True:
                    try:
                        if client.get(f"{base}/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("the server did not start")
                    time.sleep(0.05)
                ticket = client.post(f"{base}/api/events/ticket", headers=headers).json()["ticket"]
                reader = StreamReader(f"{base}/api/events/stream?ticket={ticket}")
                reader.start()
                if not reader.connected.wait(10):
                    raise SystemExit("the stream did not open")

                # 1. writes through the API process: the bus wakes the stream
                kind, sent = create_events_through_api(client, base, headers, COUNT)
                time.sleep(0.5)
                wanted_type = f"{kind}.created"
                by_subject = {
                    int(str(data["subject_id"])): (arrived, data, event_id)
                    for event_id, (arrived, data) in reader.arrivals.items()
                    if data["type"] == wanted_type
                }
                missing = [s for _, s in sent if s not in by_subject]
                if missing:
                    raise SystemExit(f"{len(missing)} {wanted_type} events never arrived")
                from_created = [
                    (by_subject[s][0] - parse_ts(str(by_subject[s][1]["created_at"]))) * 1000
                    for _, s in sent
                ]
                from_request = [(by_subject[s][0] - t0) * 1000 for t0, s in sent]
                print(f"events: {COUNT} x {wanted_type} through the API, stream open throughout")
                report("api write, created_at -> arrival", from_created)
                report("api write, request sent -> arrival", from_request)

                # 2. writes by another process (the worker): found by the poll
                conn = sqlite3.connect(tmp / "mc.db", timeout=10)
                inserted: list[int] = []
                for n in range(WORKER_COUNT):
                    with conn:
                        cursor = conn.execute(
                            "INSERT INTO events (type, subject_type, subject_id, actor,"
                            " created_at) VALUES ('conversation.started', 'conversation', ?,"
                            " 'bench', ?)",
                            (n, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
                        )
                    inserted.append(int(cursor.lastrowid or 0))
                    time.sleep(0.013)  # spread over the poll interval
                conn.close()
                wait_for(reader, set(inserted), deadline)
                cross = [
                    (reader.arrivals[i][0] - parse_ts(str(reader.arrivals[i][1]["created_at"])))
                    * 1000
                    for i in inserted
                ]
                report("other-process write (poll 1 s), created_at -> arrival", cross)
                reader.stop.set()
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
