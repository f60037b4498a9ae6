"""Bounded error bodies: the answer to a body of 90,000 unknown keys, and
``/healthz`` latency while three clients send such bodies.

    .venv/bin/python bench/bench_error_bounds.py [--seconds 8] [--clients 3]

Starts the real server (``missionctl serve``) on a loopback port with the in-app
rate limits opened up (so every body is read and judged), then:

* sends one 0.98 MB body of 90,000 unknown keys to ``/api/auth/login`` without
  credentials and prints the status and the size of the answer; for
  comparison, the size the unbounded 422 would have had (the login model
  validated in-process, one detail per key, as before the bound);
* measures ``/healthz`` latency alone, then while ``--clients`` threads send
  that body in a loop for ``--seconds``: median, p95 and max.

Loopback only, bounded loops, plain lines, no asserts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _benchlib import OPEN_LIMITS, env_for, machine, start_server

KEYS = 90_000


def big_body() -> bytes:
    return json.dumps({f"k{i:05d}": 1 for i in range(KEYS)}, separators=(",", ":")).encode()


def unbounded_answer_size(body: bytes) -> int:
    """The 422 as it was: one cleaned detail per validation error."""
    from pydantic import ValidationError

    from app.auth.schemas import LoginRequest
    from app.core.errors import error_body

    try:
        LoginRequest.model_validate_json(body)
    except ValidationError as exc:
        details = [
            {
                "loc": ["body", *(str(p) for p in err["loc"])],
                "type": err["type"],
                "message": err["msg"],
            }
            for err in exc.errors()
        ]
        return len(json.dumps(error_body("validation_failed", "the request is not valid", details)))
    return 0


def latencies(base: str, seconds: float, stop: threading.Event | None = None) -> list[float]:
    import httpx

    out: list[float] = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base, timeout=30) as client:
        while time.monotonic() < deadline and len(out) < 5000:
            started = time.perf_counter()
            client.get("/healthz")
            out.append((time.perf_counter() - started) * 1000)
            time.sleep(0.01)
    return out


def flood(base: str, body: bytes, stop: threading.Event, counts: list[int]) -> None:
    import httpx

    with httpx.Client(base_url=base, timeout=30) as client:
        while not stop.is_set() and counts[0] < 100_000:
            response = client.post(
                "/api/auth/login", content=body, headers={"Content-Type": "application/json"}
            )
            counts[0] += 1
            if response.status_code != 400:
                counts[1] += 1


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[int(len(ordered) * 0.95) - 1] if ordered else float("nan")
    return (
        f"median {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms, "
        f"max {ordered[-1]:.1f} ms ({len(ordered)} requests)"
    )


def main() -> int:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    body = big_body()
    print(f"body: {len(body) / 1e6:.2f} MB, {KEYS} unknown keys")
    before = unbounded_answer_size(body) / 1e6
    print(f"unbounded 422 (before the bound, computed in-process): {before:.1f} MB")
    with tempfile.TemporaryDirectory(prefix="mc-bench-errors-") as name:
        folder = Path(name)
        env = env_for(folder, **OPEN_LIMITS, MC_LOGIN_RATE_PER_MINUTE="1000000")
        command = [sys.executable, "-m", "app.cli", "serve"]
        from _benchlib import cli

        cli(env, "db", "migrate")
        with start_server(command, folder, env) as server:
            started = time.perf_counter()
            response = httpx.post(
                f"{server.base}/api/auth/login",
                content=body,
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            elapsed = (time.perf_counter() - started) * 1000
            code = response.json()["error"]["code"]
            print(
                f"answer to the 90,000-key body: {response.status_code} {code}, "
                f"{len(response.content)} bytes, {elapsed:.0f} ms"
            )
            print(f"/healthz alone: {summary(latencies(server.base, 3.0))}")
            stop = threading.Event()
            counts = [[0, 0] for _ in range(args.clients)]
            threads = [
                threading.Thread(target=flood, args=(server.base, body, stop, c), daemon=True)
                for c in counts
            ]
            for thread in threads:
                thread.start()
            time.sleep(0.5)
            under_load = latencies(server.base, args.seconds)
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
            sent = sum(c[0] for c in counts)
            other = sum(c[1] for c in counts)
            print(
                f"/healthz while {args.clients} clients send the body "
                f"({sent} bodies, {other} answered other than 400, "
                f"{sent * len(body) / 1e6 / args.seconds:.0f} MB/s): "
                f"{summary(under_load)}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
