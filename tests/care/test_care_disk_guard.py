"""Full disk: writes refused with 507, reads kept, a notification, no 500.

The end-to-end tests mount a small ``tmpfs`` (``size=``) under ``tmp_path`` as
root, put the database and the state directory on it, fill it up and free it
again. They are skipped with a reason when the test does not run as root.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.backup.archive import BackupError, create_backup
from app.care import disk
from app.care.disk import MIB, DiskGuard, is_disk_full_error, reserve_bytes
from app.care.middleware import DiskAlarm
from app.core.context import AppContext
from app.core.settings import Settings
from tests.support.api import ADMIN_PASSWORD, assert_error_shape, login

FS_MIB = 24
RESERVE_MIB = 4
TEXT = ("The quick brown fox jumps over the lazy dog. " * 40 + "\n") * 20  # ~36 KB of prose


# --- small pieces ----------------------------------------------------------------------


def test_the_reserve_is_the_smaller_of_percent_and_megabytes() -> None:
    gib = 1024 * MIB
    assert reserve_bytes(32 * gib, 5.0, 200) == 200 * MIB  # a big card: the absolute reserve
    assert reserve_bytes(100 * MIB, 5.0, 200) == 5 * MIB  # a small file system: 5 %
    assert reserve_bytes(100 * MIB, 5.0, 0) == 0  # 0 switches the guard off


def test_free_space_is_measured_at_most_once_per_cache_window(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = os.statvfs

    def counting(path: Any) -> os.statvfs_result:
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(disk.os, "statvfs", counting)
    now = [100.0]
    settings.disk_check_cache_s = 2.0
    guard = DiskGuard(settings, monotonic=lambda: now[0])
    for _ in range(50):
        guard.low()
    first = len(calls)
    assert 1 <= first <= 2  # one per watched file system
    now[0] += 2.5
    guard.low()
    assert len(calls) == 2 * first


def test_full_errors_are_recognised_also_when_wrapped() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    assert is_disk_full_error(full)
    assert is_disk_full_error(OSError(errno.ENOSPC, "No space left on device"))
    try:
        try:
            raise full
        except sqlite3.OperationalError as exc:
            raise RuntimeError("while committing") from exc
    except RuntimeError as wrapped:
        assert is_disk_full_error(wrapped)
    assert is_disk_full_error(ExceptionGroup("tasks", [ValueError(), full]))
    assert not is_disk_full_error(sqlite3.OperationalError("database is locked"))
    assert not is_disk_full_error(OSError(errno.EACCES, "Permission denied"))


def test_the_alarm_rings_once_per_period_and_again_after_recovery() -> None:
    now = [0.0]
    alarm = DiskAlarm(3600.0, clock=lambda: now[0])
    assert alarm.due()
    alarm.in_flight = True
    assert not alarm.due()  # one notification in flight at a time
    alarm.sent(True)
    now[0] += 60
    assert not alarm.due()  # throttled while the shortage lasts
    alarm.recovered()
    assert alarm.due()  # a new shortage is announced at once
    alarm.sent(False)
    now[0] += 301
    assert alarm.due()  # the database refused it: try again after five minutes


# --- a real small file system ------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FS_MIB}m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def settings_overrides(small_fs: Path) -> dict[str, Any]:
    return {
        "database_path": small_fs / "mc.db",
        "state_dir": small_fs / "state",
        "backup_dir": small_fs / "backups",
        "disk_reserve_mb": RESERVE_MIB,
        "disk_reserve_percent": 50.0,  # the smaller, 4 MiB, applies
        "disk_check_cache_s": 0.0,
        "repairs_cache_s": 0.0,
    }


def free_bytes(path: Path) -> int:
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def fill(mount: Path, leave: int) -> Path:
    """Write a filler file until less than ``leave`` bytes are free (0: until ENOSPC)."""
    filler = mount / "filler"
    chunk = b"\0" * (256 * 1024)
    with filler.open("ab") as handle:
        while free_bytes(mount) > leave:
            want = min(len(chunk), max(4096, free_bytes(mount) - leave))
            try:
                handle.write(chunk[:want])
                handle.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    return filler


async def new_project(client: httpx.AsyncClient, headers: dict[str, str], name: str) -> int:
    response = await client.post("/api/projects", json={"name": name}, headers=headers)
    return response.status_code


async def notifications(ctx: AppContext, title: str) -> int:
    row = await ctx.db.fetch_one("SELECT count(*) FROM notifications WHERE title = ?", (title,))
    return int(row[0]) if row else 0


async def wait_for(predicate: Any, timeout_s: float = 3.0) -> bool:
    for _ in range(int(timeout_s / 0.05)):
        if await predicate():
            return True
        await asyncio.sleep(0.05)
    return False


TITLE = "Storage nearly full: changes refused"


async def test_a_nearly_full_disk_refuses_writes_keeps_reads_and_notifies_once(
    small_fs: Path,
    client: httpx.AsyncClient,
    ctx: AppContext,
    admin_headers: dict[str, str],
    admin_user: str,
) -> None:
    assert await new_project(client, admin_headers, "before") == 201
    filler = fill(small_fs, leave=RESERVE_MIB * MIB - 512 * 1024)
    assert free_bytes(small_fs) < RESERVE_MIB * MIB

    refused = await client.post("/api/projects", json={"name": "during"}, headers=admin_headers)
    assert_error_shape(refused, 507, "insufficient_storage")
    assert "x-request-id" in refused.headers  # answered through the edge
    for method in ("PUT", "PATCH", "DELETE"):
        other = await client.request(method, "/api/projects/1", headers=admin_headers)
        assert other.status_code == 507, method
    # no credential at all: the usual 401, the guard tells such a caller nothing
    assert (await client.post("/api/projects", json={"name": "x"})).status_code == 401

    listed = await client.get("/api/projects", headers=admin_headers)
    assert listed.status_code == 200
    assert [p["name"] for p in listed.json()["items"]] == ["before"]
    health = await client.get("/api/health", headers=admin_headers)
    assert health.status_code == 200
    checks = {r["check"]: r for r in health.json()["repairs"]}
    assert checks["disk"]["severity"] == "critical"
    assert "refuse" in checks["disk"]["cause"] and checks["disk"]["fix"]

    assert await wait_for(lambda: _count(ctx, 1))  # one system notification...
    assert await new_project(client, admin_headers, "again") == 507
    await asyncio.sleep(0.2)
    assert await notifications(ctx, TITLE) == 1  # ...not one per refused request
    row = await ctx.db.fetch_one(
        "SELECT category, severity FROM notifications WHERE title = ?", (TITLE,)
    )
    assert row is not None and (row[0], row[1]) == ("system", "critical")

    # logging in still works on a full disk (it writes a session and an audit row)
    cookie_client_login = await login(client, admin_user, ADMIN_PASSWORD)
    assert cookie_client_login.status_code == 200

    filler.unlink()
    assert await new_project(client, admin_headers, "after") == 201


async def _count(ctx: AppContext, expected: int) -> bool:
    return await notifications(ctx, TITLE) == expected


async def test_sqlite_running_out_of_space_is_a_507_not_a_500(
    small_fs: Path,
    client: httpx.AsyncClient,
    ctx: AppContext,
    admin_headers: dict[str, str],
) -> None:
    ctx.settings.disk_reserve_mb = 0  # no reserve: the guard never refuses first
    assert await new_project(client, admin_headers, "p") == 201
    filler = fill(small_fs, leave=0)
    statuses: list[int] = []
    for index in range(60):
        response = await client.post(
            "/api/projects/1/documents",
            json={"title": f"doc {index}", "body": TEXT * 4},
            headers=admin_headers,
        )
        statuses.append(response.status_code)
        if response.status_code == 507:
            assert_error_shape(response, 507, "insufficient_storage")
            break
    assert 500 not in statuses, statuses
    assert statuses[-1] == 507, statuses
    # the service keeps answering
    assert (await client.get("/api/projects", headers=admin_headers)).status_code == 200
    assert (await client.get("/healthz")).status_code == 200
    filler.unlink()
    ok = await client.post(
        "/api/projects/1/documents", json={"title": "later", "body": "x"}, headers=admin_headers
    )
    assert ok.status_code == 201


async def test_the_service_starts_and_reads_with_a_nearly_full_disk(
    small_fs: Path, settings: Settings, admin_headers: dict[str, str]
) -> None:
    """A restart while the disk is full must not crash-loop: start-up writes nothing
    the reserve cannot take, and the guard answers 507 instead of failing."""
    from app.main import create_app

    fill(small_fs, leave=RESERVE_MIB * MIB - 256 * 1024)
    second = create_app(settings)
    async with second.router.lifespan_context(second):
        transport = httpx.ASGITransport(app=second, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/api/projects", headers=admin_headers)).status_code == 200
            assert await new_project(http, admin_headers, "no") == 507


def test_backups_check_free_space_before_they_start(small_fs: Path, settings: Settings) -> None:
    from app.core.migrations import migrate

    migrate(settings.database_path, settings.backups_path)
    conn = sqlite3.connect(settings.database_path)
    with contextlib.closing(conn):
        conn.execute("CREATE TABLE bulk (body TEXT)")
        conn.executemany("INSERT INTO bulk VALUES (?)", [(TEXT,)] * 100)  # ~3.6 MB
        conn.commit()
    fill(small_fs, leave=2 * MIB)
    with pytest.raises(BackupError, match="not enough free space"):
        create_backup(settings.database_path, settings.backups_path)
    assert not list(settings.backups_path.glob("*.db.gz"))
