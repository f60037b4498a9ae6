"""Helpers shared by the issue-8 benchmarks (not a benchmark itself: ``make bench``
runs ``bench/bench_*.py``).

* :func:`start_server`: a real ``missionctl serve`` (or the bench launcher that adds
  bare endpoints) on a free loopback port, its database and state in a temporary
  directory, with the time from process start to ``READY=1`` on a NOTIFY_SOCKET;
* :func:`load`: a small asyncio HTTP/1.1 keep-alive load client (raw sockets, so
  the client costs little CPU next to the server on a 2-core machine) giving
  requests per second and latency percentiles;
* :func:`wrk`: the same figures from ``wrk`` when it is installed (a Lua script
  adds p95, which ``wrk --latency`` does not print).

Plain lines out, no asserts. Loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

AGENT = {
    "name": "bench",
    "role": "benchmarks",
    "model": "demo",
    "quotas": {"tokens_per_day": 100_000_000, "cost_usd_per_day": 10_000, "runs_per_day": 100_000},
}
#: in-app limits out of the way of a throughput measurement (the limiter still runs)
OPEN_LIMITS = {
    "MC_RATE_LIMIT_PER_CLIENT": "1000000",
    "MC_RATE_LIMIT_BURST_PER_CLIENT": "1000000",
    "MC_RATE_LIMIT_PER_CREDENTIAL": "1000000",
    "MC_RATE_LIMIT_BURST_PER_CREDENTIAL": "1000000",
    "MC_TICKET_RATE_PER_MINUTE": "1000000",
    "MC_LOG_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_for(folder: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MC_", "NOTIFY_", "WATCHDOG"))}
    env.update(
        {
            "MC_DATABASE_PATH": str(folder / "mc.db"),
            "MC_STATE_DIR": str(folder / "state"),
            "MC_ENV_FILE": str(folder / "no-env-file"),
            "MC_PROFILES_PATH": str(folder / "no-profiles.toml"),
        }
    )
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str) -> str:
    """``missionctl ARGS`` with ``env``; its stdout (raises if it fails)."""
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def migrate_and_tokens(folder: Path, names: dict[str, str]) -> dict[str, str]:
    """Migrate the database and create tokens ``{name: scope}`` (as the CLI would)."""
    from app.auth import service
    from app.core.database import Database
    from app.core.migrations import migrate
    from app.core.settings import Settings
    from app.security.principal import Scope
    from app.security.secrets import server_key

    settings = Settings(database_path=folder / "mc.db", state_dir=folder / "state")
    migrate(settings.database_path, settings.backups_path)
    key = server_key(settings.secrets_dir, None)

    async def make() -> dict[str, str]:
        db = Database(settings.database_path, readers=1)
        await db.open()
        try:
            made = {}
            # every token acts for a person: a read-only bench user
            owner = await service.create_user(
                db,
                username="bench-owner",
                password="bench owner password 1",
                role=Scope.READ,
                actor="bench",
                client="bench",
            )
            for name, scope in names.items():
                created = await service.create_token(
                    db,
                    key,
                    name=name,
                    scope=Scope(scope),
                    expires_days=None,
                    actor="bench",
                    client="bench",
                    owner_user_id=owner.id,
                )
                made[name] = created.token
            return made
        finally:
            await db.close()

    return asyncio.run(make())


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    folder: Path
    ready_s: float
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_notify(sock: socket.socket, wanted: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if wanted in sock.recv(4096).decode():
                return True
        except TimeoutError:
            return False
    return False


@contextlib.contextmanager
def start_server(
    command: list[str], folder: Path, env: dict[str, str], port: int | None = None
) -> Iterator[Server]:
    """Start ``command`` (which must speak sd_notify), measure start to READY=1."""
    port = port or free_port()
    notify_path = folder / f"notify-{port}.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        log = (folder / f"server-{port}.log").open("wb")
        started = time.monotonic()
        process = subprocess.Popen(
            [*command, "--port", str(port)] if "serve" in command else command,
            env={**env, "NOTIFY_SOCKET": str(notify_path)},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        ready = wait_notify(notify, "READY=1", started + 60)
        ready_s = time.monotonic() - started if ready else float("nan")
        server = Server(process, port, folder, ready_s)
        try:
            yield server
        finally:
            server.stop()
            log.close()


def http_json(
    server: Server, method: str, path: str, token: str, body: object | None = None
) -> tuple[int, object]:
    import httpx

    response = httpx.request(
        method,
        f"{server.base}{path}",
        headers={"Authorization": f"Bearer {token}"},
        json=body,
        timeout=30,
    )
    return response.status_code, response.json() if response.content else None


def seed_tasks(server: Server, token: str, count: int) -> int:
    status, agent = http_json(server, "POST", "/api/agents", token, AGENT)
    assert status == 201, agent
    agent_id = int(agent["id"])  # type: ignore[index]
    for number in range(count):
        status, body = http_json(
            server, "POST", "/api/tasks", token, {"title": f"seeded {number}", "agent_id": agent_id}
        )
        assert status == 201, body
    return agent_id


# --------------------------------------------------------------------------- load client


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: Counter[int]
    errors: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, pct: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
        return ordered[index]

    def line(self, label: str) -> str:
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        return (
            f"{label}: {self.rps:.0f} requests/s, p50 {self.percentile(50):.2f} ms,"
            f" p95 {self.percentile(95):.2f} ms, p99 {self.percentile(99):.2f} ms"
            f" ({self.requests} requests in {self.seconds:.1f} s; {statuses}"
            f"{'; errors: ' + str(self.errors) if self.errors else ''})"
        )


RequestMaker = Callable[[int], bytes]


def request_bytes(
    method: str, path: str, token: str | None = None, body: object | None = None
) -> bytes:
    headers = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "User-Agent: mc-bench"]
    if token:
        headers.append(f"Authorization: Bearer {token}")
    payload = b""
    if body is not None:
        payload = json.dumps(body).encode()
        headers += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + payload


async def _connection(
    port: int,
    make: RequestMaker,
    counter: Iterator[int],
    stop_at: float,
    result: LoadResult,
) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        for number in counter:
            if time.monotonic() >= stop_at:
                return
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert reader is not None
            payload = make(number)
            started = time.perf_counter()
            try:
                writer.write(payload)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                close = False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        close = True
                if length:
                    await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                result.errors += 1
                writer.close()
                writer = None
                continue
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.statuses[status] += 1
            if close:
                writer.close()
                writer = None
    finally:
        if writer is not None:
            writer.close()


async def _load(
    port: int, make: RequestMaker, concurrency: int, total: int, duration_s: float
) -> LoadResult:
    result = LoadResult(0, 0.0, [], Counter())
    counter = iter(range(total))
    started = time.monotonic()
    await asyncio.gather(
        *(
            _connection(port, make, counter, started + duration_s, result)
            for _ in range(concurrency)
        )
    )
    result.seconds = time.monotonic() - started
    result.requests = len(result.latencies_ms)
    return result


def load(
    port: int,
    make: RequestMaker,
    *,
    concurrency: int = 16,
    total: int = 10**9,
    duration_s: float = 8.0,
    warmup: int = 200,
) -> LoadResult:
    """``concurrency`` keep-alive connections until ``total`` requests or ``duration_s``."""
    asyncio.run(_load(port, make, concurrency, warmup, 30.0))
    return asyncio.run(_load(port, make, concurrency, total, duration_s))


# --------------------------------------------------------------------------- wrk

WRK_SCRIPT = """
wrk.method = "{method}"
wrk.body = {body}
wrk.headers["Authorization"] = "{authorization}"
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout
  io.write(string.format("WRK %d %.3f %.3f %.3f %.3f %d\\n", summary.requests,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, errors))
end
"""


def wrk(
    url: str,
    *,
    token: str | None = None,
    method: str = "GET",
    body: object | None = None,
    connections: int = 16,
    threads: int = 1,
    duration_s: int = 8,
) -> LoadResult | None:
    """Run wrk (one thread: the other core is the server's) or None when absent."""
    binary = shutil.which("wrk")
    if binary is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            WRK_SCRIPT.format(
                method=method,
                body=json.dumps(json.dumps(body)) if body is not None else "nil",
                authorization=f"Bearer {token}" if token else "",
            )
        )
    try:
        output = subprocess.run(
            [
                binary,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{duration_s}s",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=duration_s + 60,
            check=False,
        ).stdout
    finally:
        os.unlink(script.name)
    non_2xx = 0
    for line in output.splitlines():
        if "Non-2xx" in line:
            non_2xx = int(line.split(":")[1])
        if line.startswith("WRK "):
            _, requests, seconds, p50, p95, p99, errors = line.split()
            result = LoadResult(int(requests), float(seconds), [], Counter())
            result.statuses[0] = non_2xx
            result.errors = int(errors)
            result.percentile = {  # type: ignore[method-assign]
                50: float(p50),
                95: float(p95),
                99: float(p99),
            }.__getitem__
            return result
    return None


def wrk_line(label: str, result: LoadResult | None) -> str:
    if result is None:
        return f"{label}: wrk not installed (apt-get install wrk)"
    return (
        f"{label}: {result.rps:.0f} requests/s, p50 {result.percentile(50):.2f} ms,"
        f" p95 {result.percentile(95):.2f} ms, p99 {result.percentile(99):.2f} ms"
        f" ({result.requests} requests in {result.seconds:.1f} s;"
        f" non-2xx {result.statuses[0]}; socket errors {result.errors})"
    )


def raw_sqlite_inserts(folder: Path, seconds: float = 3.0) -> float:
    """Single-row INSERTs, one transaction each, WAL + synchronous=NORMAL (the
    service's own settings), on the same file system: inserts per second."""
    path = folder / "raw.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, title TEXT, created_at TEXT)")
        count = 0
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO t (title, created_at) VALUES (?, ?)",
                (f"row {count}", "2026-01-01T00:00:00.000000Z"),
            )
            conn.execute("COMMIT")
            count += 1
        return count / (time.monotonic() - started)
    finally:
        conn.close()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> str:
    import platform

    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), Linux {platform.release()},"
        f" Python {platform.python_version()}"
    )
