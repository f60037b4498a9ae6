"""provisioning/update.yml and the release layout of the app role: the order of
an update (backup before the migration, health check after the switch), the
rollback in its rescue (current back, database restored, a failure that says
ROLLED BACK), and the bounded health wait it runs on the Pi
(roles/app/files/release_health.py), here against a real unix-socket server."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.provisioning import PROVISIONING, ROLES, load_yaml, run

APP = ROLES / "app"
HEALTH_SCRIPT = APP / "files" / "release_health.py"


def names(tasks: list[dict[str, Any]]) -> list[str]:
    return [t["name"] for t in tasks]


def module(task: dict[str, Any]) -> str:
    return next(k for k in task if k.startswith("ansible."))


def test_update_playbook_runs_the_app_roles_update_tasks() -> None:
    plays = load_yaml(PROVISIONING / "update.yml")
    assert len(plays) == 1 and plays[0]["become"] is True
    assert plays[0]["hosts"] == "mission_control"
    (task,) = plays[0]["tasks"]
    assert task["ansible.builtin.import_role"] == {"name": "app", "tasks_from": "update.yml"}


def test_update_order_and_rollback() -> None:
    tasks = load_yaml(APP / "tasks" / "update.yml")
    top = names(tasks)
    assert top.index("Refuse a Pi without the release layout") < top.index(
        "Install the new release beside the running one"
    )
    update = next(t for t in tasks if t["name"] == "Update to the new release")
    steps = names(update["block"])
    stop_and_backup = update["block"][steps.index("Stop and back up")]
    first = names(stop_and_backup["block"])
    assert first[:2] == [
        "Stop the worker and the API",
        "Back up the database with the running release (missionctl backup create)",
    ]
    backup = stop_and_backup["block"][1]
    assert backup["ansible.builtin.command"]["argv"][-2:] == ["backup", "create"]
    # a failed backup starts the running release again and changes nothing
    assert names(stop_and_backup["rescue"])[0] == "Start the running release again"
    assert steps.index("Stop and back up") < steps.index(
        "Migrate, switch and check the new release"
    )
    guarded = update["block"][steps.index("Migrate, switch and check the new release")]
    inner = names(guarded["block"])
    assert inner == [
        "Migrate the database with the new release",
        "Point previous at the release in use",
        "Switch current to the new release",
        "Start the API and the worker on the new release",
        "Wait until the new release is healthy (bounded)",
    ]
    wait = guarded["block"][-1]
    assert module(wait) == "ansible.builtin.script"
    assert "release_health.py" in wait["ansible.builtin.script"]["cmd"]
    assert "--release {{ app_release }}" in wait["ansible.builtin.script"]["cmd"]
    assert "--timeout {{ app_update_health_timeout_s }}" in update["vars"]["app_update_health_args"]
    rescue = guarded["rescue"]
    order = names(rescue)
    switch_back = rescue[order.index("Switch current back to the release before")]
    assert switch_back["ansible.builtin.file"]["src"] == "releases/{{ app_update_old }}"
    assert switch_back["ansible.builtin.file"]["dest"].endswith("/current")
    restore = rescue[order.index("Restore the database from the backup taken before the update")]
    argv = restore["ansible.builtin.command"]["argv"]
    assert argv[0] == "{{ app_update_old_dir }}/venv/bin/missionctl"
    assert argv[1:] == ["backup", "restore", "{{ app_update_backup_file }}"]
    assert (
        order.index("Stop the new release")
        < order.index("Switch current back to the release before")
        < order.index("Restore the database from the backup taken before the update")
    )
    final = rescue[-1]
    assert module(final) == "ansible.builtin.fail"
    assert final["ansible.builtin.fail"]["msg"].startswith("ROLLED BACK: ")
    # a good release: keep current and previous only, after the health check
    assert steps.index("Migrate, switch and check the new release") < steps.index(
        "Keep only the current and the previous release"
    )


def test_site_installs_a_release_and_switches_current() -> None:
    main = load_yaml(APP / "tasks" / "main.yml")[0]["block"]
    imported = [
        t["ansible.builtin.import_tasks"] for t in main if "ansible.builtin.import_tasks" in t
    ]
    assert imported.index("release.yml") < imported.index("switch.yml")
    switch = load_yaml(APP / "tasks" / "switch.yml")
    current = next(t for t in switch if t["name"] == "Point current at the release")
    # relative: the links hold inside a chroot or an image as well
    assert current["ansible.builtin.file"]["src"] == "releases/{{ app_release }}"
    assert current["notify"] == "Restart Mission Control"
    release = load_yaml(APP / "tasks" / "release.yml")
    install = next(t for t in release if t["name"].startswith("Install the release's venv"))
    assert install["args"]["creates"] == "{{ app_release_dir }}/.installed"
    assert "--require-hashes" in install["ansible.builtin.shell"]
    defaults = load_yaml(APP / "defaults" / "main.yml")
    assert defaults["app_venv"] == "/opt/mission-control/current/venv"
    assert defaults["app_update_health_timeout_s"] == 60


# --- the health wait, against a real server on a unix socket ------------------------------


@contextmanager
def fake_api(path: Path, answers: Iterator[tuple[int, bytes]]) -> Iterator[None]:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(4096)
                status, body = next(answers)
                reason = b"OK" if status == 200 else b"Service Unavailable"
                conn.sendall(
                    b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (status, reason, len(body), body)
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        server.close()


def health(sock: Path, timeout: float, settle: float) -> tuple[int, dict[str, Any], float]:
    start = time.monotonic()
    proc = run(
        [
            sys.executable,
            str(HEALTH_SCRIPT),
            "--socket",
            str(sock),
            "--timeout",
            str(timeout),
            "--settle",
            str(settle),
            "--interval",
            "0.1",
        ],
        timeout=60,
    )
    return proc.returncode, json.loads(proc.stdout), time.monotonic() - start


def forever(answer: tuple[int, bytes]) -> Iterator[tuple[int, bytes]]:
    while True:
        yield answer


def test_health_wait_passes_a_healthy_api(tmp_path: Path) -> None:
    sock = tmp_path / "api.sock"
    with fake_api(sock, forever((200, b'{"status":"ok"}'))):
        rc, result, took = health(sock, timeout=10, settle=0.5)
    assert rc == 0 and result["healthy"] is True, result
    assert took < 5


def test_health_wait_gives_up_at_its_bound(tmp_path: Path) -> None:
    sock = tmp_path / "api.sock"
    with fake_api(sock, forever((503, b'{"status":"degraded"}'))):
        rc, result, took = health(sock, timeout=1.5, settle=0.5)
    assert rc == 1 and result["healthy"] is False
    assert "503" in result["detail"], result
    assert 1.5 <= took < 6, took
    # nothing listening at all
    rc, result, took = health(tmp_path / "none.sock", timeout=1.0, settle=0.5)
    assert rc == 1 and "none.sock" in result["detail"] and took < 5


def test_health_wait_needs_health_in_a_row(tmp_path: Path) -> None:
    """A release that answers ok once, then fails (a crash loop) is not healthy."""
    sock = tmp_path / "api.sock"

    def flapping() -> Iterator[tuple[int, bytes]]:
        while True:
            yield 200, b'{"status":"ok"}'
            yield 503, b'{"status":"degraded"}'

    with fake_api(sock, flapping()):
        rc, result, _ = health(sock, timeout=1.5, settle=0.5)
    assert rc == 1, result
