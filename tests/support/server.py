"""A real ``missionctl serve`` process for the hostile, durability and load tests.

Not a test module. The server runs on a free loopback port with its database and
state in the test's directory; tokens are created in-process straight into the
database (as ``missionctl token create`` would), which is much faster than a CLI
process per token. The server can be killed (``kill -9``) and started again on
the same files and port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.auth import service
from app.core.database import Database
from app.core.migrations import migrate
from app.core.settings import Settings
from app.security.principal import Scope
from app.security.secrets import server_key
from tests.support.cli import cli_env, free_port
from tests.support.owners import owner_id

REPO = Path(__file__).resolve().parents[2]
STARTUP_S = 30.0

#: generous in-app limits unless a test sets its own
DEFAULT_ENV = {
    "MC_RATE_LIMIT_PER_CLIENT": "100000",
    "MC_RATE_LIMIT_BURST_PER_CLIENT": "100000",
    "MC_RATE_LIMIT_PER_CREDENTIAL": "100000",
    "MC_RATE_LIMIT_BURST_PER_CREDENTIAL": "100000",
    "MC_LOG_LEVEL": "WARNING",
}


def create_tokens(folder: Path, scopes: dict[str, Scope]) -> dict[str, str]:
    """Tokens named by the keys of ``scopes``, written to ``folder/mc.db`` (migrated)."""
    db_path = folder / "mc.db"
    settings = Settings(database_path=db_path, state_dir=folder / "state")
    migrate(db_path, settings.backups_path)
    key = server_key(settings.secrets_dir, None)

    async def make() -> dict[str, str]:
        db = Database(db_path, readers=1)
        await db.open()
        try:
            made: dict[str, str] = {}
            for name, scope in scopes.items():
                created = await service.create_token(
                    db,
                    key,
                    name=name,
                    scope=scope,
                    expires_days=None,
                    actor="test",
                    client="test",
                    owner_user_id=await owner_id(db),
                )
                made[name] = created.token
            return made
        finally:
            await db.close()

    return asyncio.run(make())


@dataclass
class RealServer:
    """One ``missionctl serve`` at a time on ``folder``; restartable."""

    folder: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.folder / "mc.db"

    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    def env(self) -> dict[str, str]:
        return cli_env(self.folder, **{**DEFAULT_ENV, **self.env_overrides})

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n=== start {self.starts}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
                env=self.env(),
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = STARTUP_S) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process is not None
            assert self.process.poll() is None, self.log_path.read_text()[-4000:]
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)

    def kill9(self) -> None:
        """``kill -9``: no shutdown code runs at all."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def real_server(folder: Path, **env: str) -> Iterator[RealServer]:
    server = RealServer(folder, dict(env))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def raw_exchange(
    port: int,
    payload: bytes | list[bytes],
    *,
    pause_s: float = 0.0,
    read_timeout_s: float = 10.0,
) -> tuple[bytes, bool]:
    """Send raw bytes (a list is sent piece by piece, ``pause_s`` apart) while a
    thread reads, until the server closes or ``read_timeout_s`` passes after the
    last piece. Returns (what was read, whether the server closed the connection)."""
    pieces = payload if isinstance(payload, list) else [payload]
    chunks: list[bytes] = []
    closed = threading.Event()
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout_s) as sock:

        def read() -> None:
            while True:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    closed.set()
                    return
                if not chunk:
                    closed.set()
                    return
                chunks.append(chunk)

        sock.settimeout(0.2)
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        for index, piece in enumerate(pieces):
            if closed.is_set():
                break
            if index and pause_s:
                closed.wait(pause_s)
            try:
                sock.sendall(piece)
            except OSError:
                break
        closed.wait(read_timeout_s)
        was_closed = closed.is_set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        reader.join(2)
    return b"".join(chunks), was_closed


def status_of(response: bytes) -> int | None:
    """The status code of the first response in raw bytes, or None."""
    if not response.startswith(b"HTTP/1."):
        return None
    try:
        return int(response.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None
