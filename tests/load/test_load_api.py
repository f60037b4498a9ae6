"""Bounded load on the main read and write endpoints of a real server.

Loopback only, Python threads with httpx, no timing assertions: correctness and
boundedness.

* ``REQUESTS`` requests at concurrency ``CONCURRENCY`` on ``GET /api/tasks`` and
  ``POST /api/tasks`` with generous limits: every answer is a 2xx, every task
  acknowledged exists exactly once, and the server is healthy afterwards.
* Rate limits (F4) with low limits configured: a flooding client (its own
  address, 127.0.0.3, and its own token) gets 429s with ``Retry-After`` and no
  more successes than its bucket allows, while a second client (127.0.0.2,
  another token) doing ordinary traffic at the same time is served every time.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.security.principal import Scope
from tests.support.server import RealServer, bearer, create_tokens

REQUESTS = 2000
CONCURRENCY = 16
AGENT = {
    "name": "loaded",
    "role": "r",
    "model": "m",
    "quotas": {"tokens_per_day": 100_000_000, "cost_usd_per_day": 10_000, "runs_per_day": 100_000},
}


@dataclass
class Tally:
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    created: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    retry_after: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def client_from(address: str, base: str, token: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(transport=transport, base_url=base, headers=bearer(token), timeout=30)


def run_load(
    make_client: Callable[[], httpx.Client],
    agent_id: int,
    total: int,
    concurrency: int,
    tally: Tally,
    prefix: str,
) -> None:
    """``total`` requests over ``concurrency`` threads; even ones list, odd ones create."""
    counter = iter(range(total))
    counter_lock = threading.Lock()

    def worker() -> None:
        with make_client() as client:
            while True:
                with counter_lock:
                    number = next(counter, None)
                if number is None:
                    return
                try:
                    if number % 2:
                        body = {
                            "title": f"{prefix} {number}",
                            "agent_id": agent_id,
                            "idempotency_key": f"{prefix}-{number}",
                        }
                        response = client.post("/api/tasks", json=body)
                        kind = "POST"
                    else:
                        response = client.get("/api/tasks", params={"limit": 50})
                        kind = "GET"
                except httpx.HTTPError as exc:
                    with tally.lock:
                        tally.errors.append(repr(exc))
                    continue
                with tally.lock:
                    tally.statuses[kind, response.status_code] += 1
                    if kind == "POST" and response.status_code == 201:
                        tally.created.append(int(response.json()["id"]))
                    if response.status_code == 429:
                        tally.retry_after.add(response.headers.get("retry-after", ""))
                        assert response.json()["error"]["code"] == "rate_limited"

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a load thread hung"


def setup(folder: Path, **env: str) -> tuple[RealServer, dict[str, str], int]:
    tokens = create_tokens(
        folder, {"admin": Scope.ADMIN, "flood": Scope.OPERATE, "legit": Scope.OPERATE}
    )
    server = RealServer(folder, env)
    server.start()
    with httpx.Client(base_url=server.base, headers=bearer(tokens["admin"]), timeout=10) as c:
        agent = c.post("/api/agents", json=AGENT)
        assert agent.status_code == 201, agent.text
    return server, tokens, int(agent.json()["id"])


def test_the_main_endpoints_under_load(tmp_path: Path) -> None:
    server, tokens, agent_id = setup(tmp_path)
    tally = Tally()
    try:
        started = time.monotonic()
        run_load(
            lambda: client_from("127.0.0.1", server.base, tokens["legit"]),
            agent_id,
            REQUESTS,
            CONCURRENCY,
            tally,
            "load",
        )
        took = time.monotonic() - started
        assert not tally.errors, tally.errors[:5]
        assert set(tally.statuses) <= {("GET", 200), ("POST", 201)}, tally.statuses
        assert sum(tally.statuses.values()) == REQUESTS
        assert httpx.get(f"{server.base}/healthz", timeout=5).status_code == 200
        print(f"\nload: {REQUESTS} requests at concurrency {CONCURRENCY} in {took:.1f} s")
    finally:
        assert server.stop() == 0
    conn = sqlite3.connect(server.db_path)
    try:
        stored = conn.execute("SELECT id FROM tasks WHERE title LIKE 'load %'").fetchall()
        assert sorted(r[0] for r in stored) == sorted(tally.created)
        assert len(tally.created) == REQUESTS // 2
    finally:
        conn.close()
    assert "Traceback" not in server.log()


def test_rate_limits_hold_and_legitimate_traffic_is_served(tmp_path: Path) -> None:
    rate, burst = 20.0, 30
    server, tokens, agent_id = setup(
        tmp_path,
        MC_RATE_LIMIT_PER_CLIENT=str(rate),
        MC_RATE_LIMIT_BURST_PER_CLIENT=str(burst),
        MC_RATE_LIMIT_PER_CREDENTIAL=str(rate),
        MC_RATE_LIMIT_BURST_PER_CREDENTIAL=str(burst),
    )
    flood, legit = Tally(), Tally()
    stop = threading.Event()

    def legitimate() -> None:
        """A person's client: a list and sometimes a create, a few per second."""
        with client_from("127.0.0.2", server.base, tokens["legit"]) as client:
            number = 0
            while not stop.is_set():
                number += 1
                if number % 3:
                    response = client.get("/api/tasks", params={"limit": 10})
                    kind = "GET"
                else:
                    body = {"title": f"legit {number}", "agent_id": agent_id}
                    response = client.post("/api/tasks", json=body)
                    kind = "POST"
                legit.statuses[kind, response.status_code] += 1
                time.sleep(0.2)

    person = threading.Thread(target=legitimate)
    try:
        person.start()
        time.sleep(0.5)
        started = time.monotonic()
        run_load(
            lambda: client_from("127.0.0.3", server.base, tokens["flood"]),
            agent_id,
            REQUESTS,
            CONCURRENCY,
            flood,
            "flood",
        )
        took = time.monotonic() - started
        time.sleep(0.5)
    finally:
        stop.set()
        person.join(30)
    try:
        assert not flood.errors, flood.errors[:5]
        refused = sum(n for (_, status), n in flood.statuses.items() if status == 429)
        served = sum(n for (_, status), n in flood.statuses.items() if status in (200, 201))
        assert refused + served == REQUESTS, flood.statuses
        # the bucket: a burst plus the rate over the flood's duration (and a little slack)
        assert served <= burst + rate * (took + 1.0), (served, took)
        assert refused >= REQUESTS // 2, flood.statuses
        assert flood.retry_after and all(v.isdigit() and int(v) >= 1 for v in flood.retry_after)
        # the other client was served throughout, every time
        assert sum(legit.statuses.values()) >= 5, legit.statuses
        assert set(legit.statuses) <= {("GET", 200), ("POST", 201)}, legit.statuses
        assert httpx.get(f"{server.base}/healthz", timeout=5).status_code == 200
        print(
            f"\nflood: {REQUESTS} requests in {took:.1f} s: {served} served, {refused} refused"
            f" (429); the other client: {dict(legit.statuses)}"
        )
    finally:
        assert server.stop() == 0
    assert "Traceback" not in server.log()
