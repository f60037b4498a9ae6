"""The notifier as a real process (``missionctl notify run``): systemd's READY
and watchdog, a security alert delivered to a loopback receiver, a "send test"
queued through the API, a clean stop, no URL in its output even at DEBUG; it
refuses to start on a file others may change. And the API process has no
delivery path at all."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.core.context import AppContext
from app.events.transaction import transaction
from tests.support.cli import cli_env
from tests.support.receiver import SECRET_PATH, Receiver


def _receive_until(sock: socket.socket, wanted: str, deadline: float) -> None:
    seen: list[str] = []
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            break
        seen.append(message)
        if wanted in message:
            return
    raise AssertionError(f"{wanted!r} not received; got {seen}")


def _channels(tmp_path: Path, url: str, mode: int = 0o600) -> Path:
    path = tmp_path / "notify.toml"
    path.write_text(f'[[channel]]\nname = "phone"\nurl = "{url}"\n')
    path.chmod(mode)
    return path


async def test_the_notifier_delivers_a_security_alert_and_a_test(
    tmp_path: Path, ctx: AppContext, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    receiver = Receiver()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    env = cli_env(
        tmp_path,
        MC_NOTIFY_CHANNELS_PATH=str(_channels(tmp_path, receiver.url)),
        MC_NOTIFY_POLL_S="0.2",
        MC_LOG_LEVEL="DEBUG",
        NOTIFY_SOCKET=str(tmp_path / "notify.sock"),
        WATCHDOG_USEC="1000000",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "notify", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _receive_until(sock, "READY=1", time.monotonic() + 30)
        _receive_until(sock, "WATCHDOG=1", time.monotonic() + 5)
        started = time.monotonic()
        async with transaction(ctx, "test") as tx:
            await tx.security_alert("Identity change refused", "someone tried")
        while not receiver.received:
            assert time.monotonic() - started < 10, "not delivered within 10 s"
            time.sleep(0.05)
        print(f"security alert to loopback receiver: {time.monotonic() - started:.2f} s")
        assert receiver.titles() == ["Identity change refused"]
        queued = await client.post("/api/notifications/channels/phone/test", headers=admin_headers)
        assert queued.status_code == 202
        deadline = time.monotonic() + 10
        while len(receiver.received) < 2:
            assert time.monotonic() < deadline, "test not sent"
            time.sleep(0.05)
        view = (await client.get("/api/notifications/channels", headers=admin_headers)).json()
        assert view["notifier_running"] and view["warning"] is None
        assert view["channels"][0]["name"] == "phone"
        process.send_signal(signal.SIGTERM)
        _receive_until(sock, "STOPPING=1", time.monotonic() + 5)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate(timeout=10)[0]
        receiver.stop()
        sock.close()
    assert "notifier started" in output
    assert SECRET_PATH not in output and f":{receiver.port}" not in output


def test_the_notifier_refuses_a_file_others_may_change(tmp_path: Path) -> None:
    path = _channels(tmp_path, f"json://127.0.0.1:9/{SECRET_PATH}", 0o622)
    env = cli_env(tmp_path, MC_NOTIFY_CHANNELS_PATH=str(path))
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "notify", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "others may change it" in done.stderr and "chmod 0640" in done.stderr
    assert SECRET_PATH not in done.stdout + done.stderr


def test_the_api_process_has_no_delivery_path(tmp_path: Path) -> None:
    """Serving the API loads no notification library, no delivery module and no
    job that sends: alerts leave only through the notifier."""
    script = (
        "import sys\n"
        "from app import main\n"
        "from app.core.settings import Settings\n"
        "main.create_app(Settings())\n"
        "jobs = [f'{j.__module__}.{j.__name__}' for j in main.BACKGROUND_JOBS]\n"
        "print([j for j in jobs if 'notif' in j])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('apprise', 'requests', 'urllib3', 'smtplib')"
        " or m in ('app.notifications.delivery', 'app.notifications.channels',"
        " 'app.notifications.notifier')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "[]"], done.stdout
