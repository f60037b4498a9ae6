"""SD-card care: bytes written to storage per hour by the idle API and worker.

Run from the repository root::

    .venv/bin/python bench/bench_idle_writes.py [--window SECONDS] [--settle SECONDS]
                                                [--read-rate PER_SECOND]

Starts a real API server (``missionctl serve`` on a free loopback port) and a
real worker (``missionctl worker``) on one fresh database in a temporary
directory on the same file system as the repository, waits until both are up
and have settled (start-up writes: migrations, keys, the first heartbeat), then
reads ``write_bytes`` of ``/proc/<pid>/io`` of each process at the start and
the end of a bounded window and prints the difference extrapolated to one hour.

Two phases:

* ``idle``: nobody talks to the API;
* ``read-only``: ``--read-rate`` authenticated GET requests per second (a
  dashboard left open); read traffic must not turn into per-request writes
  (last-used times are batched once a minute).

``write_bytes`` counts what the process caused to be written to the block
layer (page cache dirtied by it, attributed when it is dirtied), so on tmpfs it
is 0: this bench warns when the temporary directory is on tmpfs. Plain lines
out; the target is at most 1 MB per hour per process. Exit status 0 always
(a measurement, not a test); ``--strict`` exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _benchlib import ROOT, cli, env_for, free_port

TARGET_MB_PER_HOUR = 1.0
START_DEADLINE_S = 60.0


def _env(tmp: Path, port: int) -> dict[str, str]:
    # MC_PROFILES_PATH (env_for): a missing file, so the bundled demo profile
    return env_for(tmp, MC_LOG_LEVEL="WARNING", MC_PORT=str(port), PYTHONPATH=str(ROOT))


def _write_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/io") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key.strip() == "write_bytes":
                return int(value)
    raise RuntimeError(f"no write_bytes in /proc/{pid}/io")


def _fs_type(path: Path) -> str:
    best, kind = "", "?"
    with open("/proc/mounts") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) < 3:
                continue
            mount = parts[1]
            if str(path).startswith(mount) and len(mount) > len(best):
                best, kind = mount, parts[2]
    return kind


def _wait_up(base: str, db: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    api_up = worker_up = False
    while time.monotonic() < deadline and not (api_up and worker_up):
        if not api_up:
            with contextlib.suppress(httpx.HTTPError):
                api_up = httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        if not worker_up and db.exists():
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
            try:
                worker_up = conn.execute("SELECT count(*) FROM worker_heartbeats").fetchone()[0] > 0
            except sqlite3.Error:
                worker_up = False
            finally:
                conn.close()
        time.sleep(0.1)
    if not (api_up and worker_up):
        raise SystemExit(
            f"bench: not up in {START_DEADLINE_S:.0f} s (api {api_up}, worker {worker_up})"
        )


def _measure(
    label: str, pids: dict[str, int], window: float, during: object = None
) -> dict[str, float]:
    before = {name: _write_bytes(pid) for name, pid in pids.items()}
    started = time.monotonic()
    requests = 0
    if callable(during):
        requests = during(window)
    else:
        time.sleep(window)
    elapsed = time.monotonic() - started
    rates: dict[str, float] = {}
    for name, pid in pids.items():
        written = _write_bytes(pid) - before[name]
        rates[name] = written * 3600.0 / elapsed / 1e6
        print(
            f"{label}: {name}: {written} bytes in {elapsed:.1f} s"
            f" = {rates[name]:.3f} MB per hour (target <= {TARGET_MB_PER_HOUR:g})"
        )
    if requests:
        print(f"{label}: {requests} authenticated GET requests made during the window")
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--window",
        type=float,
        default=120.0,
        help="seconds measured per phase (cover the 120 s heartbeat)",
    )
    parser.add_argument("--settle", type=float, default=15.0, help="seconds after start-up")
    parser.add_argument("--read-rate", type=float, default=2.0, help="GET/s in the read phase")
    parser.add_argument("--dir", help="parent of the temporary state directory (not tmpfs)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="MC_NAME=VALUE",
        help="a setting for both processes, e.g. MC_LAST_USED_FLUSH_S=300 (repeatable)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mc-bench-idle-", dir=args.dir) as name:
        tmp = Path(name)
        kind = _fs_type(tmp.resolve())
        print(f"state directory: {tmp} ({kind})")
        if kind in ("tmpfs", "ramfs"):
            print("warning: tmpfs/ramfs never reaches a block device: write_bytes stays 0")
        port = free_port()
        env = _env(tmp, port)
        for pair in args.set:
            name, _, value = pair.partition("=")
            if not name.startswith("MC_") or not value:
                parser.error(f"--set wants MC_NAME=VALUE, not {pair!r}")
            env[name] = value
            print(f"setting: {name}={value}")
        cli(env, "db", "migrate")
        cli(env, "first-run")  # the local admin: every token acts for a person
        token = cli(
            env, "token", "create", "--name", "bench", "--scope", "read", "--owner", "admin"
        )
        base = f"http://127.0.0.1:{port}"
        api = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--name", "bench"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_up(base, tmp / "mc.db")
            print(f"both up; settling {args.settle:.0f} s")
            time.sleep(args.settle)
            pids = {"api": api.pid, "worker": worker.pid}
            idle = _measure("idle", pids, args.window)

            def read_traffic(window: float) -> int:
                gap = 1.0 / args.read_rate
                headers = {"Authorization": f"Bearer {token}"}
                end = time.monotonic() + window
                made = 0
                with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
                    while time.monotonic() < end:
                        for path in ("/api/health", "/api/tasks", "/api/notifications"):
                            http.get(path)
                            made += 1
                        time.sleep(gap)
                return made

            reads = _measure("read-only", pids, args.window, read_traffic)
        finally:
            for process in (api, worker):
                process.terminate()
            for process in (api, worker):
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    missed = [
        f"{phase} {name}"
        for phase, rates in (("idle", idle), ("read-only", reads))
        for name, rate in rates.items()
        if rate > TARGET_MB_PER_HOUR
    ]
    print("targets met" if not missed else f"targets missed: {', '.join(missed)}")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
