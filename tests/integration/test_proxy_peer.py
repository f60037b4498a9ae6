"""Forwarded headers are trusted from nginx's uid only; the server is not dumpable;
redirects never carry a client-chosen host.

An agent run could reach the API's unix socket and was trusted as the proxy:
its ``X-Forwarded-For`` forged client addresses into the audit log, dodged
per-client limits and locked accounts. Now the server reads the peer's uid
from the kernel (``SO_PEERCRED``) and trusts a unix peer only when it is
``trusted_proxy_user``'s (``app/core/clientip.py``, ``app/core/serve.py``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from app.core.clientip import PEER_CREDENTIALS, ProxyTrust, peer_uid, resolve_uid
from app.core.middleware import relative_location
from tests.support.cli import cli_env

LIMITS = {"MC_RATE_LIMIT_PER_CLIENT": "0.5", "MC_RATE_LIMIT_BURST_PER_CLIENT": "2"}


def _scope(uid: int | None, xff: str = "10.0.0.9") -> dict[str, object]:
    scope: dict[str, object] = {
        "type": "http",
        "client": None,
        "scheme": "http",
        "headers": [(b"x-forwarded-for", xff.encode())],
    }
    if uid is not None:
        scope["extensions"] = {PEER_CREDENTIALS: {"uid": uid}}
    return scope


def test_peer_uid_comes_from_the_kernel() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        assert peer_uid(left) == os.getuid()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as inet:
        assert peer_uid(inet) is None
    assert peer_uid(None) is None


def test_unix_peer_trusted_only_with_the_proxy_uid() -> None:
    me = str(os.getuid())
    trust = ProxyTrust(["unix"], me)
    assert trust.resolve(_scope(os.getuid()))[0] == "10.0.0.9"  # type: ignore[arg-type]
    assert trust.resolve(_scope(os.getuid() + 1))[0] == "unix"  # type: ignore[arg-type]
    assert trust.resolve(_scope(None))[0] == "unix"  # type: ignore[arg-type]
    # "unix" not listed: no unix peer is a proxy, whatever its uid
    assert ProxyTrust([], me).resolve(_scope(os.getuid()))[0] == "unix"  # type: ignore[arg-type]
    # a proxy user that does not exist on this host: trust nobody
    nobody = ProxyTrust(["unix"], "no-such-user-mc")
    assert nobody.resolve(_scope(os.getuid()))[0] == "unix"  # type: ignore[arg-type]
    # "unix" in a forwarded chain is an address like any other, never a proxy
    chain = trust.resolve(_scope(os.getuid(), "10.0.0.7, unix"))  # type: ignore[arg-type]
    assert chain[0] == "unix"


def test_resolve_uid() -> None:
    assert resolve_uid("0") == 0
    assert resolve_uid("root") == 0
    assert resolve_uid("no-such-user-mc") is None


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://evil.example/api/tasks", "/api/tasks"),
        ("https://evil.example:8443/ui/?x=1", "/ui/?x=1"),
        ("http://evil.example//evil.example/x", "/evil.example/x"),
        ("http://evil.example/\\evil.example", "/evil.example"),
        ("http://evil.example", "/"),
        ("/ui/", "/ui/"),
        ("/tasks?id=3", "/tasks?id=3"),
    ],
)
def test_locations_are_relative(location: str, expected: str) -> None:
    assert relative_location(location) == expected


@contextmanager
def serving(tmp_path: Path, **extra: str) -> Iterator[httpx.Client]:
    uds = tmp_path / "run" / "api.sock"
    env = cli_env(tmp_path, MC_TRUSTED_PROXIES='["unix"]', **LIMITS, **extra)
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--uds", str(uds)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not uds.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        transport = httpx.HTTPTransport(uds=str(uds))
        with httpx.Client(transport=transport, base_url="http://mc") as client:
            for _ in range(100):
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            time.sleep(4.5)  # the probe above spent tokens of the "unix" bucket
            yield client
    finally:
        process.terminate()
        process.wait(timeout=15)


def _statuses(client: httpx.Client) -> list[int]:
    return [
        client.get("/healthz", headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
        for i in range(4)
    ]


def test_forwarded_for_from_the_proxy_uid_is_honoured(tmp_path: Path) -> None:
    with serving(tmp_path, MC_TRUSTED_PROXY_USER=str(os.getuid())) as client:
        assert _statuses(client) == [200] * 4  # four clients, one request each
        # a trailing-slash redirect names no host, whatever Host says
        response = client.get(
            "/api/tasks/", headers={"Host": "evil.example", "X-Forwarded-For": "10.0.1.1"}
        )
        assert response.status_code == 307
        assert response.headers["location"] == "/api/tasks"


def test_forwarded_for_from_another_uid_is_ignored(tmp_path: Path) -> None:
    other = str(os.getuid() + 4242)
    with serving(tmp_path, MC_TRUSTED_PROXY_USER=other) as client:
        # one client, "unix": its burst of two, then refused
        assert _statuses(client)[2:] == [429, 429]


def test_make_non_dumpable_really_clears_the_flag(tmp_path: Path) -> None:
    code = (
        "import ctypes; from app.core.serve import make_non_dumpable; "
        "libc = ctypes.CDLL(None); before = libc.prctl(3, 0, 0, 0, 0); "
        "ok = make_non_dumpable(); print(before, ok, libc.prctl(3, 0, 0, 0, 0))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=cli_env(tmp_path),
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["1", "True", "0"]


def test_serve_makes_itself_non_dumpable_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import cli
    from app.core import serve

    calls: list[str] = []
    monkeypatch.setattr(serve, "make_non_dumpable", lambda: calls.append("prctl") or True)
    for name, value in cli_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    # a refused listen address ends serve early, after the prctl
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "8999"]) == 2
    assert calls == ["prctl"]
