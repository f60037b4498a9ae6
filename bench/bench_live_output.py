"""Live run output: how soon a piece the agent writes is in the event log (where
the API's stream picks it up within ``MC_EVENT_POLL_S``), and what the worker
writes to disk while a run streams.

An in-process worker (short guard turn: 0.5 s, the default is 1 s) runs a fake
agent that prints 1000 Claude Code stream-json messages over 20 s, each stamped
with the wall clock when written. Delay = the event row's ``created_at`` minus
the stamp, per piece: median, p95, worst. Disk: this process's ``write_bytes``
(/proc/self/io: the worker's SQLite writes, WAL and checkpoints) during the run,
scaled to an hour. Plain lines out, no asserts; loopback only, bounded.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.worker import (  # noqa: E402
    Rows,
    make_settings,
    running_worker,
    script_profile,
    write_agent,
    write_profiles,
)

PIECES = 1000
SECONDS = 20.0

AGENT = f"""
import json, sys, time
for i in range({PIECES}):
    sys.stdout.write(json.dumps({{"type": "assistant", "message": {{"id": f"m{{i}}",
        "content": [{{"type": "text", "text": f"<{{i}}|{{time.time():.6f}}>"}}]}}}}) + "\\n")
    sys.stdout.flush()
    time.sleep({SECONDS / PIECES})
emit("done")
"""


def written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


async def main() -> None:
    with tempfile.TemporaryDirectory(
        dir=str(ROOT / "var") if (ROOT / "var").is_dir() else None
    ) as tmp:
        tmp_path = Path(tmp)
        settings = make_settings(tmp_path)
        rows = Rows(settings.database_path)
        write_profiles(
            tmp_path,
            # the agent writes for SECONDS: a wall clock above it, so the run is not cut
            {"s": script_profile(write_agent(tmp_path, "s", AGENT), wall_clock_seconds=60)},
        )
        agent = rows.agent(profile="s")
        rows.task(agent)
        async with running_worker(settings, cancel_poll_s=0.5) as worker:
            before = written_bytes()
            started = time.monotonic()
            await worker.run_once()
            elapsed = time.monotonic() - started
            written = written_bytes() - before
        delays: list[float] = []
        events = rows.events("conversation.output")
        for event in events:
            created = datetime.fromisoformat(str(event["created_at"]).replace("Z", "+00:00"))
            for chunk in json.loads(event["payload"])["chunks"]:
                for piece in chunk["text"].split(">"):
                    if "|" in piece:
                        stamp = float(piece.split("|", 1)[1])
                        delays.append((created.timestamp() - stamp) * 1000)
    delays.sort()
    print(
        f"live output: {len(delays)} pieces in {len(events)} events over {elapsed:.1f} s;"
        f" agent write -> event row: median {statistics.median(delays):.0f} ms,"
        f" p95 {delays[int(len(delays) * 0.95) - 1]:.0f} ms, worst {delays[-1]:.0f} ms"
        " (guard turn 0.5 s; the API's stream adds up to MC_EVENT_POLL_S)"
    )
    print(
        f"worker disk writes while streaming: {written / 1024:.0f} KiB in {elapsed:.1f} s,"
        f" {written / elapsed * 3600 / 1e6:.1f} MB per hour"
    )


if __name__ == "__main__":
    asyncio.run(main())
