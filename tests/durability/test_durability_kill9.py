"""Durability of the API under ``kill -9``.

A real ``missionctl serve`` takes a concurrent write load: tasks (each with its
``task.created`` event, audit record and queued conversation, and a rule that
turns it into a notification), projects, API tokens, agent memories, and
notifications marked read. It is killed with SIGKILL at random moments
(``KILLS`` times, seeded), restarted on the same files each time, and at the end:

* every write that was acknowledged to a client (a 2xx received) is present,
  with the rows its transaction carried (event, audit record);
* nothing is duplicated: a task create retried after a kill (same idempotency
  key) exists once, a project (unique name) once;
* ``PRAGMA integrity_check`` is ``ok``, ``foreign_key_check`` is empty, and the
  tamper-evident audit chain still verifies (``missionctl audit verify``).

A write whose answer was lost in a kill is unknown: it may or may not exist, and
only the idempotent ones are retried.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.security.principal import Scope
from tests.support.cli import missionctl
from tests.support.server import RealServer, bearer, create_tokens

SEED = 8
KILLS = 4
WRITERS = 6
LOAD_BETWEEN_KILLS_S = (0.5, 1.5)
AGENT = {
    "name": "durable",
    "role": "writes",
    "model": "demo",
    "quotas": {"tokens_per_day": 100_000_000, "cost_usd_per_day": 10_000, "runs_per_day": 100_000},
}
NOTIFY_RULE = {
    "name": "task notes",
    "on": "task.created",
    "then": [
        {
            "type": "notify",
            "category": "task",
            "severity": "info",
            "title": "task {subject_id}",
            "body": "created",
        }
    ],
}


@dataclass
class Ledger:
    """What the clients know: acknowledged writes and the ones left unknown."""

    acked: dict[str, list[tuple[str, int | str]]] = field(default_factory=dict)
    unknown: int = 0
    retried: int = 0
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, kind: str, key: str, ident: int | str) -> None:
        with self.lock:
            self.acked.setdefault(kind, []).append((key, ident))

    def count(self) -> int:
        return sum(len(items) for items in self.acked.values())


@dataclass
class Load:
    server: RealServer
    admin: str
    agent_id: int
    ledger: Ledger = field(default_factory=Ledger)
    stop: threading.Event = field(default_factory=threading.Event)

    def writer(self, number: int) -> None:
        rng = random.Random(SEED * 100 + number)
        sequence = 0
        with httpx.Client(
            base_url=self.server.base, headers=bearer(self.admin), timeout=10
        ) as client:
            while not self.stop.is_set():
                sequence += 1
                key = f"w{number}-{sequence}"
                kind = rng.choices(["task", "project", "token", "memory", "read"], [6, 2, 1, 1, 1])[
                    0
                ]
                self.write(client, kind, key)

    def write(self, client: httpx.Client, kind: str, key: str) -> None:
        method, path, body = self.request(client, kind, key)
        if path is None:
            return
        attempts = 0
        while not self.stop.is_set():
            attempts += 1
            try:
                response = client.request(method, path, json=body)
            except httpx.TransportError:
                # the server died under this request (or is not back yet)
                if kind not in ("task", "project"):
                    with self.ledger.lock:
                        self.ledger.unknown += 1
                    return
                with self.ledger.lock:
                    self.ledger.retried += 1
                time.sleep(0.05)
                continue
            if response.status_code in (200, 201, 204):
                data: Any = response.json() if response.content else {}
                ident = data.get("public_id") if kind == "token" else data.get("id")
                self.ledger.ack(kind, key, ident if ident is not None else path)
                return
            if kind == "project" and response.status_code == 409 and attempts > 1:
                self.ledger.ack(kind, key, -1)  # committed before the kill cut the answer
                return
            if response.status_code in (429, 503):
                time.sleep(0.05)
                continue
            with self.ledger.lock:
                self.ledger.unexpected.append(f"{kind} {response.status_code} {response.text}")
            return

    def request(
        self, client: httpx.Client, kind: str, key: str
    ) -> tuple[str, str | None, dict[str, Any] | None]:
        if kind == "task":
            body = {"title": f"task {key}", "agent_id": self.agent_id, "idempotency_key": key}
            return "POST", "/api/tasks", body
        if kind == "project":
            return "POST", "/api/projects", {"name": f"project {key}"}
        if kind == "token":
            return "POST", "/api/tokens", {"name": f"token-{key}", "scope": "read"}
        if kind == "memory":
            return "POST", f"/api/agents/{self.agent_id}/memory", {"content": f"memory {key}"}
        try:
            listing = client.get("/api/notifications", params={"limit": 20})
        except httpx.TransportError:
            return "POST", None, None
        unread = [n["id"] for n in listing.json().get("items", []) if not n.get("read_at")]
        if listing.status_code != 200 or not unread:
            return "POST", None, None
        return "POST", f"/api/notifications/{unread[0]}/read", None


@pytest.fixture
def load(tmp_path: Path) -> Iterator[Load]:
    tokens = create_tokens(tmp_path, {"admin": Scope.ADMIN})
    server = RealServer(tmp_path, {"MC_EVENT_POLL_S": "0.2"})
    server.start()
    try:
        with httpx.Client(base_url=server.base, headers=bearer(tokens["admin"]), timeout=10) as c:
            agent = c.post("/api/agents", json=AGENT)
            assert agent.status_code == 201, agent.text
            assert c.post("/api/rules", json=NOTIFY_RULE).status_code == 201
        yield Load(server, tokens["admin"], int(agent.json()["id"]))
    finally:
        server.stop()


def test_acknowledged_writes_survive_kill_9(load: Load, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    writers = [threading.Thread(target=load.writer, args=(n,)) for n in range(WRITERS)]
    for thread in writers:
        thread.start()
    kills = 0
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(*LOAD_BETWEEN_KILLS_S))
            before = load.ledger.count()
            load.server.kill9()
            kills += 1
            time.sleep(rng.uniform(0.0, 0.3))  # writers keep hammering a dead port
            load.server.start()
            assert load.server.process is not None and load.server.process.poll() is None
            assert before > 0, "no write was acknowledged before the kill"
        time.sleep(rng.uniform(*LOAD_BETWEEN_KILLS_S))
    finally:
        load.stop.set()
        for thread in writers:
            thread.join(30)
    ledger = load.ledger
    assert not ledger.unexpected, ledger.unexpected[:5]
    verified = verify(load.server.db_path, ledger)
    assert load.server.stop() == 0
    check_database(load.server.db_path)
    audit = missionctl(tmp_path, "audit", "verify")
    assert audit.returncode == 0, audit.stderr
    print(
        f"\nkills survived: {kills}; writes acknowledged: {ledger.count()}"
        f" ({ {k: len(v) for k, v in ledger.acked.items()} }); verified: {verified};"
        f" unknown after a kill: {ledger.unknown}; retries after a kill: {ledger.retried}"
    )
    assert kills == KILLS
    assert verified == ledger.count()
    assert len(ledger.acked.get("task", [])) >= 20


def verify(db_path: Path, ledger: Ledger) -> int:
    """Every acknowledged write is in the database; returns how many were checked."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    verified = 0
    try:
        for key, ident in ledger.acked.get("task", []):
            rows = conn.execute(
                "SELECT id, title FROM tasks WHERE idempotency_key = ?", (key,)
            ).fetchall()
            assert rows == [(ident, f"task {key}")], (key, ident, rows)
            events = conn.execute(
                "SELECT count(*) FROM events WHERE type = 'task.created' AND subject_id = ?",
                (ident,),
            ).fetchone()[0]
            assert events == 1, (key, events)
            audited = conn.execute(
                "SELECT count(*) FROM audit_log WHERE action = 'task.create' AND target = ?",
                (f"task:{ident}",),
            ).fetchone()[0]
            assert audited == 1, (key, audited)
            verified += 1
        for key, _ in ledger.acked.get("project", []):
            count = conn.execute(
                "SELECT count(*) FROM projects WHERE name = ?", (f"project {key}",)
            ).fetchone()[0]
            assert count == 1, (key, count)
            verified += 1
        for key, public_id in ledger.acked.get("token", []):
            row = conn.execute(
                "SELECT name FROM api_tokens WHERE public_id = ?", (public_id,)
            ).fetchone()
            assert row == (f"token-{key}",), (key, row)
            verified += 1
        for key, ident in ledger.acked.get("memory", []):
            row = conn.execute("SELECT content FROM agent_memory WHERE id = ?", (ident,)).fetchone()
            assert row == (f"memory {key}",), (key, row)
            verified += 1
        for _, ident in ledger.acked.get("read", []):
            row = conn.execute(
                "SELECT read_at FROM notifications WHERE id = ?", (ident,)
            ).fetchone()
            assert row is not None and row[0] is not None, ident
            verified += 1
        # no task exists twice under one key, acknowledged or not
        duplicates = conn.execute(
            "SELECT idempotency_key, count(*) FROM tasks WHERE idempotency_key IS NOT NULL"
            " GROUP BY idempotency_key HAVING count(*) > 1"
        ).fetchall()
        assert duplicates == []
    finally:
        conn.close()
    return verified


def check_database(db_path: Path) -> None:
    conn = sqlite3.connect(db_path, timeout=10)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
