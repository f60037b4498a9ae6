"""``missionctl serve`` speaks the systemd notify protocol for real.

A datagram socket stands in for systemd's NOTIFY_SOCKET: READY=1 must come
only once the port accepts connections, WATCHDOG=1 must follow, and SIGTERM
must give STOPPING=1 and a clean exit.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.cli import cli_env, free_port, missionctl


def _receive_until(sock: socket.socket, wanted: str, deadline: float) -> list[str]:
    seen: list[str] = []
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            break
        seen.append(message)
        if wanted in message:
            return seen
    raise AssertionError(f"{wanted!r} not received; got {seen}")


def test_ready_watchdog_and_graceful_stop(tmp_path: Path) -> None:
    missionctl(tmp_path, "db", "migrate")
    notify_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    port = free_port()
    env = cli_env(tmp_path, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="1000000")
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _receive_until(sock, "READY=1", started + 30)
        ready_after = time.monotonic() - started
        print(f"time from process start to READY: {ready_after:.3f} s")
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass  # bound before READY
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {"status": "ok"}
        _receive_until(sock, "WATCHDOG=1", time.monotonic() + 5)
        process.send_signal(signal.SIGTERM)
        _receive_until(sock, "STOPPING=1", time.monotonic() + 5)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        sock.close()
    output = process.stdout.read().decode() if process.stdout else ""
    assert "Traceback" not in output


def test_unix_socket_listener(tmp_path: Path) -> None:
    uds = tmp_path / "run" / "api.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--uds", str(uds)],
        env=cli_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not uds.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        transport = httpx.HTTPTransport(uds=str(uds))
        with httpx.Client(transport=transport, base_url="http://mc") as client:
            for _ in range(50):
                try:
                    response = client.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert response.json() == {"status": "ok"}
            assert client.get("/api/health").status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=15)
