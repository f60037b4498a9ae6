"""Live run output end to end: from the agent writing a chunk to an event-stream
client (what a browser's ``EventSource`` on the run page does) receiving it.

A real ``missionctl serve`` and ``missionctl worker`` (default settings: the
worker's guard turn, which batches the output, 1 s; the stream's poll for other
processes' events, ``MC_EVENT_POLL_S`` 1 s), a fake agent that prints ``PIECES``
Claude Code stream-json messages over ``SECONDS`` s, each stamped with the wall
clock when written, and a client on ``/api/events/stream`` (a one-time ticket,
as the UI gets one). Delay = arrival at the client minus the stamp, per chunk:
median, p95, worst. Same host clock for both ends. Plain lines out, no asserts;
loopback only, bounded by ``DEADLINE_S``.

    .venv/bin/python bench/bench_live_output_stream.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _benchlib import ROOT, cli, env_for, free_port
from bench_event_latency import StreamReader
from bench_live_output import AGENT, PIECES, SECONDS

from tests.support.worker import script_profile, write_agent, write_profiles

DEADLINE_S = 120.0


def main() -> int:
    deadline = time.monotonic() + DEADLINE_S
    with tempfile.TemporaryDirectory(prefix="mc-bench-") as tmp_name:
        tmp = Path(tmp_name)
        # the agent writes for SECONDS: a wall clock above it, so the run is not cut
        agent_profile = script_profile(write_agent(tmp, "s", AGENT), wall_clock_seconds=60)
        profiles = write_profiles(tmp, {"s": agent_profile})
        env = env_for(
            tmp,
            MC_LOG_LEVEL="WARNING",
            MC_PROFILES_PATH=str(profiles),
            MC_RUNNER_SANDBOX="off",  # the fake agent lives in tmp, outside the sandbox
            PYTHONPATH=str(ROOT),
        )
        cli(env, "db", "migrate")
        cli(env, "first-run")
        token = cli(
            env, "token", "create", "--name", "bench", "--scope", "admin", "--owner", "admin"
        )
        headers = {"Authorization": f"Bearer {token}"}
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = (tmp / "processes.log").open("wb")
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "app.cli", *args],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for args in (["serve", "--port", str(port)], ["worker", "--name", "bench"])
        ]
        try:
            with httpx.Client(timeout=10) as client:
                while True:
                    try:
                        if client.get(f"{base}/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit("the server did not start")
                    time.sleep(0.05)
                ticket = client.post(f"{base}/api/events/ticket", headers=headers).json()["ticket"]
                reader = StreamReader(f"{base}/api/events/stream?ticket={ticket}")
                reader.start()
                if not reader.connected.wait(10):
                    raise SystemExit("the stream did not open")
                agent = client.post(
                    f"{base}/api/agents",
                    headers=headers,
                    json={"name": "streamer", "role": "bench", "model": "demo", "profile": "s"},
                )
                agent.raise_for_status()
                task = client.post(
                    f"{base}/api/tasks",
                    headers=headers,
                    json={"title": "stream", "agent_id": agent.json()["id"]},
                )
                task.raise_for_status()
                delays: list[float] = []
                events = 0
                seen: set[int] = set()
                task_url = f"{base}/api/tasks/{task.json()['id']}"
                settled = None  # the run ended: the last batch arrives within a poll
                while time.monotonic() < deadline and (
                    settled is None or time.monotonic() < settled
                ):
                    if settled is None:
                        status = client.get(task_url, headers=headers).json()["status"]
                        if status in ("succeeded", "failed"):
                            settled = time.monotonic() + 3.0
                    for event_id, (arrived, data) in list(reader.arrivals.items()):
                        if event_id in seen or data.get("type") != "conversation.output":
                            continue
                        seen.add(event_id)
                        events += 1
                        payload = data.get("payload") or {}
                        for chunk in payload.get("chunks", []):  # type: ignore[union-attr]
                            for piece in str(chunk.get("text", "")).split(">"):
                                if "|" in piece:
                                    stamp = float(piece.split("|", 1)[1])
                                    delays.append((arrived - stamp) * 1000)
                    time.sleep(0.1)
                reader.stop.set()
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            log.close()
    if not delays:
        raise SystemExit("no live output arrived")
    delays.sort()
    print(
        f"live output end to end: {len(delays)} chunks received of {PIECES} written,"
        f" in {events} events"
        f" over {SECONDS:.0f} s (worker guard turn 1 s, MC_EVENT_POLL_S 1 s)"
    )
    print(
        f"agent writes a chunk -> event-stream client receives it: median"
        f" {statistics.median(delays):.0f} ms, p95 {delays[int(len(delays) * 0.95) - 1]:.0f} ms,"
        f" worst {delays[-1]:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
