"""Delay from a task's creation to its event on 200 open SSE streams.

    .venv/bin/python bench/bench_sse_fanout.py [--streams 200] [--tasks 20]

Starts a real ``missionctl serve``, opens ``--streams`` live streams
(``/api/events/stream`` with one-time tickets; four read tokens, as one identity
may hold at most 100 streams), then creates ``--tasks`` tasks one after the other
through ``POST /api/tasks`` and measures, for every stream and every task, the time
from just before the POST was sent to the moment that stream delivered the
``task.created`` event. The API process wakes its streams through its in-process
bus after the commit. Plain lines, no asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import psutil
from _benchlib import (
    AGENT,
    OPEN_LIMITS,
    env_for,
    machine,
    median,
    migrate_and_tokens,
    start_server,
)

PER_IDENTITY = 50


async def open_stream(port: int, ticket: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/events/stream?ticket={ticket} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(head.decode(errors="replace"))
    return reader, writer


async def read_events(
    reader: asyncio.StreamReader, arrivals: dict[int, float], connected: asyncio.Event
) -> None:
    """Record when each task.created event arrives (chunked transfer is tolerated:
    chunk-size lines are not SSE fields and are skipped)."""
    event = None
    while True:
        line = await reader.readline()
        if not line:
            return
        text = line.decode(errors="replace").rstrip("\r\n")
        if text.startswith(": connected") or text.startswith(":connected"):
            connected.set()
        elif text.startswith("event:"):
            event = text.split(":", 1)[1].strip()
        elif text.startswith("data:") and event == "task.created":
            data = json.loads(text.split(":", 1)[1])
            arrivals[int(data["subject_id"])] = time.perf_counter()
            event = None
        elif text == "":
            event = None


async def run(port: int, pid: int, tokens: list[str], admin: str, streams: int, tasks: int) -> None:
    base = f"http://127.0.0.1:{port}"
    readers: list[asyncio.Task[None]] = []
    writers: list[asyncio.StreamWriter] = []
    arrivals: list[dict[int, float]] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        started = time.monotonic()
        for index in range(streams):
            token = tokens[index // PER_IDENTITY]
            ticket = await http.post(
                "/api/events/ticket", headers={"Authorization": f"Bearer {token}"}
            )
            ticket.raise_for_status()
            reader, writer = await open_stream(port, ticket.json()["ticket"])
            seen: dict[int, float] = {}
            connected = asyncio.Event()
            readers.append(asyncio.create_task(read_events(reader, seen, connected)))
            await asyncio.wait_for(connected.wait(), 10)
            writers.append(writer)
            arrivals.append(seen)
        print(f"{streams} streams open in {time.monotonic() - started:.1f} s")
        headers = {"Authorization": f"Bearer {admin}"}
        agent = await http.post("/api/agents", json=AGENT, headers=headers)
        agent_id = agent.json()["id"]
        await asyncio.sleep(1.0)
        sent: dict[int, float] = {}
        for number in range(tasks):
            before = time.perf_counter()
            created = await http.post(
                "/api/tasks",
                json={"title": f"fan-out {number}", "agent_id": agent_id},
                headers=headers,
            )
            created.raise_for_status()
            sent[int(created.json()["id"])] = before
            await asyncio.sleep(0.25)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(len(a) < tasks for a in arrivals):
            await asyncio.sleep(0.05)
    delays = [
        (seen[task] - at) * 1000 for seen in arrivals for task, at in sent.items() if task in seen
    ]
    missing = streams * tasks - len(delays)
    ordered = sorted(delays)
    print(
        f"task creation to its event, over {streams} streams x {tasks} tasks:"
        f" median {median(delays):.1f} ms, p95 {ordered[int(len(ordered) * 0.95) - 1]:.1f} ms,"
        f" max {ordered[-1]:.1f} ms; deliveries {len(delays)}, missing {missing}"
    )
    last_per_task = [max(seen[t] for seen in arrivals if t in seen) - at for t, at in sent.items()]
    print(
        f"until the last of the {streams} streams had it: median"
        f" {median(last_per_task) * 1000:.1f} ms"
    )
    rss = psutil.Process(pid).memory_info().rss / 2**20
    print(f"server RSS with {streams} streams open: {rss:.1f} MB")
    for writer in writers:
        writer.close()
    for reader_task in readers:
        reader_task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=20)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    identities = max(1, -(-args.streams // PER_IDENTITY))
    with tempfile.TemporaryDirectory(prefix="mc-bench-sse-") as name:
        folder = Path(name)
        names = {f"reader{n}": "read" for n in range(identities)} | {"admin": "admin"}
        tokens = migrate_and_tokens(folder, names)
        env = env_for(
            folder,
            **OPEN_LIMITS,
            MC_EVENT_STREAMS_PER_IDENTITY=str(PER_IDENTITY),
            MC_EVENT_HEARTBEAT_S="15",
        )
        with start_server([sys.executable, "-m", "app.cli", "serve"], folder, env) as server:
            readers = [tokens[f"reader{n}"] for n in range(identities)]
            asyncio.run(
                run(
                    server.port,
                    server.process.pid,
                    readers,
                    tokens["admin"],
                    args.streams,
                    args.tasks,
                )
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
