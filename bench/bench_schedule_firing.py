"""Firing accuracy of schedules: the delay from a due time to its firing.

An in-process worker serving its own loops (the schedule pass every
``schedule_poll_s``, 5 s, the default) and ``SCHEDULES`` schedules of
``* * * * *`` made through the schedule service, over ``MINUTES`` minute
boundaries: ``SCHEDULES x MINUTES`` firings (default 20 x 5 = 100). Delay = the
firing row's ``fired_at`` (stamped in the firing's transaction, with its task)
minus its ``due_at``: median, p95 and worst, and the same for the first firing of
each minute alone (no other firing of that pass before it). The clock is assumed
synchronised (``clock_assume_synchronised``; the Pi's check has its own tests).
Plain lines out, no asserts; bounded (the minutes asked for, plus one).

    .venv/bin/python bench/bench_schedule_firing.py [schedules] [minutes]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.schedules import service as schedules  # noqa: E402
from app.schedules.schemas import ScheduleCreate  # noqa: E402
from tests.support.worker import (  # noqa: E402
    DEMO_ARGV,
    Rows,
    make_settings,
    profile,
    running_worker,
    write_profiles,
)

SCHEDULES = int(sys.argv[1]) if len(sys.argv) > 1 else 20
MINUTES = int(sys.argv[2]) if len(sys.argv) > 2 else 5


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def report(label: str, values_s: list[float]) -> None:
    values = sorted(values_s)
    p95 = values[max(0, int(len(values) * 0.95) - 1)]
    print(
        f"{label}: n={len(values)} median {statistics.median(values):.2f} s,"
        f" p95 {p95:.2f} s, worst {values[-1]:.2f} s"
    )


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="mc-bench-") as tmp:
        folder = Path(tmp)
        settings = make_settings(folder, clock_assume_synchronised=True)
        rows = Rows(settings.database_path)
        write_profiles(folder, {"demo": profile(DEMO_ARGV)})
        agent = rows.agent(runs=100_000)
        async with running_worker(settings, schedule_poll_s=5.0) as worker:
            for n in range(SCHEDULES):
                spec = ScheduleCreate(
                    name=f"bench {n}", cron="* * * * *", title=f"tick {n}", agent_id=agent
                )
                await schedules.create_schedule(worker.ctx, spec, actor="bench", client="bench")
            serving = asyncio.create_task(worker.serve())
            wanted = SCHEDULES * MINUTES
            deadline = time.monotonic() + 60 * (MINUTES + 1)
            while time.monotonic() < deadline:
                fired = rows.value("SELECT count(*) FROM schedule_firings WHERE kind = 'due'")
                if fired >= wanted:
                    break
                await asyncio.sleep(1)
            worker.request_stop()
            await asyncio.wait_for(serving, 30)
        firings = rows.all(
            "SELECT schedule_id, due_at, fired_at, outcome FROM schedule_firings"
            " WHERE kind = 'due' ORDER BY id LIMIT ?",
            (wanted,),
        )
    delays = [stamp(f["fired_at"]) - stamp(f["due_at"]) for f in firings]
    first: dict[str, float] = {}
    for f, delay in zip(firings, delays, strict=True):
        first[f["due_at"]] = min(delay, first.get(f["due_at"], delay))
    outcomes = {str(f["outcome"]) for f in firings}
    print(
        f"schedule firings: {len(firings)} ({SCHEDULES} schedules x {MINUTES} due times,"
        f" pass every 5 s; outcomes {sorted(outcomes)})"
    )
    report("due time -> firing, every firing", delays)
    report("due time -> firing, first of each due time", list(first.values()))


if __name__ == "__main__":
    asyncio.run(main())
