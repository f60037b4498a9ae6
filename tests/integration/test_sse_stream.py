"""The live event stream (F3) against a real ``missionctl serve`` with a real HTTP client.

Events are written either through the API (the in-process bus wakes the
stream) or straight into the SQLite file from this test process (the stream
finds them by its poll, as it finds the worker's events).
"""

from __future__ import annotations

import json
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.support.cli import cli_env, free_port, missionctl

STARTUP_S = 30.0
READ_TIMEOUT_S = 5.0


@dataclass
class Server:
    base: str
    process: subprocess.Popen[bytes]
    tmp_path: Path
    env: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, scope: str, name: str | None = None) -> str:
        key = name or scope
        if key not in self.tokens:
            if not self.tokens:
                made = missionctl(
                    self.tmp_path,
                    "user",
                    "create",
                    "sse-owner",
                    "--password-stdin",
                    stdin="a very long password\n",
                    **self.env,
                )
                assert made.returncode == 0, made.stderr
            result = missionctl(
                self.tmp_path,
                "token",
                "create",
                "--name",
                key,
                "--scope",
                scope,
                "--owner",
                "sse-owner",
                **self.env,
            )
            assert result.returncode == 0, result.stderr
            self.tokens[key] = result.stdout.strip()
        return self.tokens[key]

    def headers(self, scope: str, name: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(scope, name)}"}

    def ticket(self, scope: str = "admin", name: str | None = None) -> str:
        response = httpx.post(
            f"{self.base}/api/events/ticket", headers=self.headers(scope, name), timeout=5
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["expires_in"] > 0
        return str(body["ticket"])

    def stream(
        self, ticket: str, last_event_id: int | None = None, read_timeout_s: float = READ_TIMEOUT_S
    ) -> AbstractContextManager[httpx.Response]:
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
        client = httpx.Client(timeout=httpx.Timeout(5.0, read=read_timeout_s))
        return _closing_stream(client, f"{self.base}/api/events/stream?ticket={ticket}", headers)

    def insert_event(self, event_type: str = "task.created", min_scope: str = "read") -> int:
        """Write an event as another process (the worker) would."""
        conn = sqlite3.connect(self.tmp_path / "mc.db", timeout=10)
        try:
            with conn:
                cursor = conn.execute(
                    "INSERT INTO events (type, subject_type, subject_id, actor, min_scope,"
                    " payload, created_at) VALUES (?, 'task', 1, 'test', ?, ?, ?)",
                    (
                        event_type,
                        min_scope,
                        json.dumps({"scope": min_scope}),
                        datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    ),
                )
            return int(cursor.lastrowid or 0)
        finally:
            conn.close()


@contextmanager
def _closing_stream(
    client: httpx.Client, url: str, headers: dict[str, str]
) -> Iterator[httpx.Response]:
    with client, client.stream("GET", url, headers=headers) as response:
        yield response


@dataclass
class Message:
    id: int | None = None
    event: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    def json(self) -> dict[str, object]:
        value = json.loads(self.data)
        assert isinstance(value, dict)
        return value


class Reader:
    """Parses an SSE response into messages (comments are kept apart)."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        self.lines = response.iter_lines()
        self.comments: list[str] = []

    def next_message(self, deadline_s: float = READ_TIMEOUT_S) -> Message:
        """The next event (skipping comments), within ``deadline_s``."""
        until = time.monotonic() + deadline_s
        current = Message()
        for line in self.lines:
            if time.monotonic() > until:
                raise AssertionError("no event in time")
            if line == "":
                if current.event is not None or current.data:
                    return current
                current = Message()
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "id":
                current.id = int(value)
            elif name == "event":
                current.event = value
            elif name == "data":
                current.data += value
        raise AssertionError("the stream ended")

    def wait_comment(self, text: str, deadline_s: float = READ_TIMEOUT_S) -> None:
        until = time.monotonic() + deadline_s
        while text not in self.comments:
            if time.monotonic() > until:
                raise AssertionError(f"no {text!r} comment; got {self.comments}")
            line = next(self.lines)
            if line.startswith(":"):
                self.comments.append(line[1:].strip())


@contextmanager
def running_server(tmp_path: Path, **extra: str) -> Iterator[Server]:
    env = {
        "MC_EVENT_POLL_S": "0.2",
        "MC_RATE_LIMIT_PER_CLIENT": "1000",
        "MC_RATE_LIMIT_BURST_PER_CLIENT": "1000",
        **extra,
    }
    migrated = missionctl(tmp_path, "db", "migrate", **env)
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    log_file = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=cli_env(tmp_path, **env),
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = Server(f"http://127.0.0.1:{port}", process, tmp_path, env)
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            try:
                if httpx.get(f"{server.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log_file.close()
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body


def get_stream(server: Server, ticket: str | None, **headers: str) -> httpx.Response:
    """A refused stream answers at once; a stream that opened is closed here."""
    url = f"{server.base}/api/events/stream"
    params = {"ticket": ticket} if ticket is not None else {}
    with httpx.Client(timeout=5) as client:
        with client.stream("GET", url, params=params, headers=headers) as response:
            if response.status_code == 200:
                return response
            response.read()
            return response


# tickets ------------------------------------------------------------------------
def test_ticket_opens_one_stream_only_once(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        ticket = server.ticket("read")
        with server.stream(ticket) as response:
            reader = Reader(response)
            reader.wait_comment("connected")
            assert response.headers["cache-control"] == "no-store"
            assert response.headers["x-accel-buffering"] == "no"
        again = get_stream(server, ticket)
        assert_error(again, 401, "unauthenticated")
        assert "already used" in again.json()["error"]["message"]
        server_log = (tmp_path / "server.log").read_text()
        assert ticket not in server_log  # never logged


def test_expired_ticket_is_refused(tmp_path: Path) -> None:
    with running_server(tmp_path, MC_EVENT_TICKET_TTL_S="1") as server:
        ticket = server.ticket("read")
        time.sleep(1.3)
        response = get_stream(server, ticket)
        assert_error(response, 401, "unauthenticated")
        assert "expired" in response.json()["error"]["message"]
        # a fresh one still works
        with server.stream(server.ticket("read")) as fresh:
            Reader(fresh).wait_comment("connected")


def test_forged_missing_and_url_tokens_are_refused(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        assert_error(get_stream(server, None), 401, "unauthenticated")
        assert_error(get_stream(server, secrets.token_urlsafe(32)), 401, "unauthenticated")
        assert_error(get_stream(server, "x" * 5000), 401, "unauthenticated")
        token = server.token("admin")
        # a bearer token is no ticket, in the query or in a header
        assert_error(get_stream(server, token), 401, "unauthenticated")
        refused = get_stream(server, None, Authorization=f"Bearer {token}")
        assert_error(refused, 401, "unauthenticated")
        url = f"{server.base}/api/events/stream?token={token}"
        assert_error(httpx.get(url, timeout=5), 400, "credential_in_url")


# the stream ---------------------------------------------------------------------
def test_events_arrive_in_order_and_resume_after_last_event_id(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        with server.stream(server.ticket()) as response:
            reader = Reader(response)
            reader.wait_comment("connected")
            first = [server.insert_event() for _ in range(3)]
            got = [reader.next_message() for _ in range(3)]
            assert [m.id for m in got] == first
            assert got[0].event == "task.created" and got[0].json()["id"] == first[0]
        missed = [server.insert_event(f"task.{n}") for n in ("updated", "status_changed")]
        missed.append(server.insert_event("mission.approved"))
        with server.stream(server.ticket(), last_event_id=first[-1]) as response:
            reader = Reader(response)
            replay = [reader.next_message() for _ in range(3)]
            assert [m.id for m in replay] == missed
            assert [m.event for m in replay] == [
                "task.updated",
                "task.status_changed",
                "mission.approved",
            ]
            live = server.insert_event()
            assert reader.next_message().id == live
        bad = get_stream(server, server.ticket(), **{"Last-Event-ID": "abc"})
        assert_error(bad, 400, "invalid_last_event_id")


def test_api_writes_wake_the_stream_at_once(tmp_path: Path) -> None:
    # The poll is slow here: only the in-process bus can deliver in time.
    with running_server(tmp_path, MC_EVENT_POLL_S="30", MC_EVENT_HEARTBEAT_S="60") as server:
        with server.stream(server.ticket()) as response:
            reader = Reader(response)
            reader.wait_comment("connected")
            started = time.monotonic()
            created = httpx.post(
                f"{server.base}/api/agents",
                headers=server.headers("admin"),
                json={"name": "scout", "role": "research", "model": "demo"},
                timeout=5,
            )
            assert created.status_code == 201, created.text
            message = reader.next_message(deadline_s=3)
            assert message.event == "agent.created"
            assert time.monotonic() - started < 3


def test_read_scope_does_not_see_operate_or_admin_events(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        with (
            server.stream(server.ticket("read")) as read_response,
            server.stream(server.ticket("admin")) as admin_response,
        ):
            read_reader, admin_reader = Reader(read_response), Reader(admin_response)
            read_reader.wait_comment("connected")
            admin_reader.wait_comment("connected")
            hidden_operate = server.insert_event("escalation.opened", "operate")
            hidden_admin = server.insert_event("rule.created", "admin")
            visible = server.insert_event("task.created", "read")
            assert read_reader.next_message().id == visible
            admin_ids = [admin_reader.next_message().id for _ in range(3)]
            assert admin_ids == [hidden_operate, hidden_admin, visible]
        # a resume is filtered the same way
        with server.stream(server.ticket("read"), last_event_id=0) as response:
            assert Reader(response).next_message().id == visible
        listing = httpx.get(
            f"{server.base}/api/events", headers=server.headers("read"), timeout=5
        ).json()
        assert [item["id"] for item in listing["items"]] == [visible]


def test_heartbeat_comments_keep_the_stream_open(tmp_path: Path) -> None:
    with running_server(tmp_path, MC_EVENT_HEARTBEAT_S="0.5") as server:
        with server.stream(server.ticket("read")) as response:
            reader = Reader(response)
            started = time.monotonic()
            reader.wait_comment("keep-alive", deadline_s=3)
            assert time.monotonic() - started < 3


def test_streams_per_identity_are_capped(tmp_path: Path) -> None:
    with running_server(tmp_path, MC_EVENT_STREAMS_PER_IDENTITY="2") as server:
        # (each reader is kept in a variable: dropping it would close its stream)
        with server.stream(server.ticket("admin")) as one:
            first = Reader(one)
            first.wait_comment("connected")
            with server.stream(server.ticket("admin")) as two:
                second = Reader(two)
                second.wait_comment("connected")
                third = get_stream(server, server.ticket("admin"))
                assert_error(third, 429, "too_many_streams")
                # another identity has its own allowance
                with server.stream(server.ticket("read")) as other:
                    Reader(other).wait_comment("connected")
                # the capped streams were alive all along
                inserted = server.insert_event()
                assert first.next_message().id == inserted
                assert second.next_message().id == inserted
        # closing a stream gives its slot back
        deadline = time.monotonic() + 5
        while True:
            response = get_stream(server, server.ticket("admin"))
            if response.status_code == 200:
                break
            assert response.status_code == 429 and time.monotonic() < deadline
            time.sleep(0.2)


def test_revoked_token_ends_its_stream(tmp_path: Path) -> None:
    with running_server(tmp_path, MC_EVENT_HEARTBEAT_S="0.5") as server:
        server.token("read", "doomed")
        with server.stream(server.ticket("read", "doomed")) as response:
            reader = Reader(response)
            reader.wait_comment("connected")
            public_id = server.tokens["doomed"].split("_")[1]
            revoked = httpx.delete(
                f"{server.base}/api/tokens/{public_id}", headers=server.headers("admin"), timeout=5
            )
            assert revoked.status_code == 204
            message = reader.next_message(deadline_s=3)
            assert message.event == "stream.closed"
            assert message.json() == {"reason": "credential_revoked"}
            with pytest.raises(AssertionError, match="ended"):
                reader.next_message(deadline_s=2)


def test_server_stop_ends_open_streams(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        with server.stream(server.ticket("read"), read_timeout_s=30) as response:
            reader = Reader(response)
            reader.wait_comment("connected")
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            try:
                message = reader.next_message(deadline_s=30)
                assert message.event == "stream.closed"
                assert message.json() == {"reason": "server_stopping"}
                reader.next_message(deadline_s=30)
            except AssertionError as ended:
                assert "ended" in str(ended)
            except httpx.RemoteProtocolError:
                pass  # the server cut the connection: also an end
            took = time.monotonic() - started
            assert server.process.wait(timeout=15) == 0
            print(f"stop with an open stream took {took:.2f} s")
            assert took < 12
