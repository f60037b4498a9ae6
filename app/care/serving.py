"""Where the running API really listens, for ``missionctl doctor``.

``missionctl serve`` may be started with ``--port``/``--host``/``--uds``, so the
configured address is not always the serving one. While it runs, ``serve``
keeps ``$MC_STATE_DIR/serving.json`` (its pid and address; no secret); the doctor
reads it, checks the pid is alive, and asks ``/healthz`` at that address.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.core.settings import Settings

FILE_NAME = "serving.json"
PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Serving:
    address: str  # "http://127.0.0.1:8080" or "unix:/run/mission-control/api.sock"
    pid: int | None


def serving_path(settings: Settings) -> Path:
    return settings.state_dir / FILE_NAME


def address_of(settings: Settings) -> str:
    if settings.listen_uds is not None:
        return f"unix:{settings.listen_uds}"
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"


@contextlib.contextmanager
def serving_record(settings: Settings) -> Iterator[None]:
    """Keep the record while the server runs (best effort: never stops a start)."""
    path = serving_path(settings)
    written = False
    with contextlib.suppress(OSError):
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"address": address_of(settings), "pid": os.getpid()}))
        tmp.replace(path)
        written = True
    try:
        yield
    finally:
        if written:
            with contextlib.suppress(OSError):
                path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def recorded(settings: Settings) -> Serving | None:
    """The running server's record, or None (none, unreadable, or its process is gone)."""
    try:
        data = json.loads(serving_path(settings).read_text()[:4096])
        address, pid = str(data["address"]), int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Serving(address, pid) if _alive(pid) else None


def probe(address: str) -> str | None:
    """``/healthz``'s status word at ``address`` ("ok", "degraded"), None if nothing answers."""
    try:
        if address.startswith("unix:"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(PROBE_TIMEOUT_S)
                sock.connect(address.removeprefix("unix:"))
                sock.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
                answer = b""
                while len(answer) < 65536:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
            body = answer.partition(b"\r\n\r\n")[2]
        else:
            url = address + "/healthz"
            try:
                with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as reply:  # noqa: S310
                    body = reply.read(65536)
            except urllib.error.HTTPError as answer:  # 503 "degraded" is still an answer
                body = answer.read(65536)
    except (OSError, ValueError):
        return None
    try:
        return str(json.loads(body).get("status", "unknown"))
    except (ValueError, AttributeError):
        return "unknown"
