"""Run every benchmark of ``bench/`` (what ``make bench`` does, one by one) and end
with the figures that docs/performance.md quotes, gathered in one place.

    .venv/bin/python bench/run_all.py [--quiet-load 0.5] [--only NAME ...]

``--quiet-load`` waits (up to ten minutes) until the one-minute load average is
below the given value before each benchmark: on a shared 2-core machine another
process's work shows up directly in the figures. Plain lines, no asserts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

#: lines worth repeating in the summary, by the text they start with or contain
HEADLINES = (
    "machine:",
    "server start to READY",
    "API first start",
    "API restart to READY",
    "API idle RSS",
    "API RSS after",
    "worker start to READY",
    "worker idle RSS",
    "idle RSS:",
    "python client, c=16",
    "python client ratio",
    "wrk -t1",
    "wrk ratio",
    "raw SQLite inserts",
    "ratio POST",
    "task creation to its event",
    "until the last of",
    "server RSS",
    "MB/s",
    "flood",
    "event-stream client receives it",
    "due time -> firing",
)


def wait_quiet(limit: float) -> None:
    deadline = time.monotonic() + 600
    while os.getloadavg()[0] >= limit and time.monotonic() < deadline:
        time.sleep(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet-load", type=float, default=None)
    parser.add_argument("--only", nargs="*", default=None, help="e.g. bench_api_load")
    args = parser.parse_args()
    scripts = sorted(BENCH.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem in args.only]
    summary: list[str] = []
    for script in scripts:
        if args.quiet_load is not None:
            wait_quiet(args.quiet_load)
        print(f"== {script.relative_to(ROOT)} (load average {os.getloadavg()[0]:.2f})", flush=True)
        process = subprocess.run(
            [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, check=False
        )
        print(process.stdout, end="", flush=True)
        if process.returncode != 0:
            print(process.stderr[-2000:], file=sys.stderr)
            summary.append(f"{script.name}: FAILED (exit {process.returncode})")
            continue
        summary += [
            f"{script.stem}: {line.strip()}"
            for line in process.stdout.splitlines()
            if any(mark in line for mark in HEADLINES)
        ]
    print("\n== summary")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
