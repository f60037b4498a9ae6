"""Power cuts and kills are never silent: the run marker of
``app/care/shutdown.py``, and a real ``missionctl serve`` killed with SIGKILL,
stopped cleanly, and "rebooted" (another boot id)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from app.care import shutdown
from app.core.database import Database
from app.core.settings import Settings
from app.security.principal import Scope
from tests.support.server import RealServer, bearer, create_tokens

TITLE = "Unclean shutdown detected"


def _boot(tmp_path: Path, value: str) -> Path:
    path = tmp_path / "boot_id"
    path.write_text(value + "\n")
    return path


def test_a_clean_stop_leaves_nothing_to_report(tmp_path: Path) -> None:
    boot = _boot(tmp_path, "boot-a")
    assert shutdown.claim(tmp_path, boot_id_path=boot) is None
    assert shutdown.marker_path(tmp_path).stat().st_mode & 0o777 == 0o600
    shutdown.release(tmp_path)
    assert not shutdown.marker_path(tmp_path).exists()
    assert shutdown.claim(tmp_path, boot_id_path=boot) is None


def test_a_stop_without_release_is_reported_with_its_cause(tmp_path: Path) -> None:
    boot = _boot(tmp_path, "boot-a")
    shutdown.claim(tmp_path, boot_id_path=boot)
    # the process "died": its pid is not alive any more
    marker = shutdown.marker_path(tmp_path)
    marker.write_text(marker.read_text().replace('"pid": ', '"pid": 999999999, "x": '))
    killed = shutdown.claim(tmp_path, boot_id_path=boot)
    assert killed is not None and killed.rebooted is False and killed.pid == 999999999
    # a power cut: the next start is in another boot
    power_cut = shutdown.claim(tmp_path, boot_id_path=_boot(tmp_path, "boot-b"))
    assert power_cut is not None and power_cut.rebooted is True
    assert power_cut.started_at


def test_a_torn_marker_still_counts_as_unclean(tmp_path: Path) -> None:
    shutdown.marker_path(tmp_path).write_text('{"pid": 12')
    stop = shutdown.claim(tmp_path, boot_id_path=_boot(tmp_path, "b"))
    assert stop is not None and stop.rebooted is None


def test_the_marker_of_a_live_api_on_the_same_state_is_not_a_crash(tmp_path: Path) -> None:
    boot = _boot(tmp_path, "boot-a")
    shutdown.claim(tmp_path, boot_id_path=boot)  # this very (live) process
    marker = shutdown.marker_path(tmp_path)
    marker.write_text(marker.read_text().replace('"pid": ', '"pid": 1, "x": '))  # pid 1 lives
    assert shutdown.claim(tmp_path, boot_id_path=boot) is None


def test_an_unwritable_state_dir_does_not_stop_the_api(tmp_path: Path) -> None:
    missing = tmp_path / "not-there"
    assert shutdown.claim(missing, boot_id_path=_boot(tmp_path, "b")) is None


def test_the_owner_is_told_the_cause_and_the_database_state() -> None:
    cut = shutdown.UncleanStop(pid=7, started_at="2026-11-29T03:00:00Z", rebooted=True)
    title, body = shutdown.describe(cut, "ok")
    assert title == TITLE
    assert "lost power" in body and "checked at start: ok" in body
    killed = shutdown.UncleanStop(pid=7, started_at=None, rebooted=False)
    _, body = shutdown.describe(killed, "*** in database main *** Page 3: never used")
    assert "pid 7" in body and "FAILED" in body and "backup restore" in body


async def test_a_damaged_database_is_named_by_the_check(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "PRAGMA page_size=1024; CREATE TABLE t(x TEXT); CREATE INDEX ix ON t(x);"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)"
        " INSERT INTO t SELECT hex(randomblob(100)) FROM n;"
    )
    conn.close()
    # overwrite a page in the middle (an index or table page) with zeros: torn write
    data = bytearray(path.read_bytes())
    data[1024 * 6 : 1024 * 7] = b"\0" * 1024
    path.write_bytes(bytes(data))

    class FileDb:
        """The real file through sqlite3 (Database.open would switch it to WAL)."""

        async def fetch_all(self, sql: str) -> list[tuple[object, ...]]:
            with sqlite3.connect(path) as conn:
                return conn.execute(sql).fetchall()

    class Ctx:
        db = FileDb()

    result = await shutdown.database_check(Ctx)  # type: ignore[arg-type]
    print(result)
    assert result != "ok"


def _unclean_notes(server: RealServer, token: str) -> list[dict[str, object]]:
    with httpx.Client(base_url=server.base, headers=bearer(token), timeout=10) as client:
        listing = client.get("/api/notifications", params={"limit": 100})
    assert listing.status_code == 200, listing.text
    return [n for n in listing.json()["items"] if n["title"] == TITLE]


def _wait_notes(server: RealServer, token: str, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 15
    while True:
        notes = _unclean_notes(server, token)
        if len(notes) >= count or time.monotonic() > deadline:
            return notes
        time.sleep(0.1)


def test_kill_9_is_reported_once_and_a_clean_restart_is_not(tmp_path: Path) -> None:
    token = create_tokens(tmp_path, {"admin": Scope.ADMIN})["admin"]
    server = RealServer(tmp_path)
    server.start()
    try:
        assert _unclean_notes(server, token) == []
        server.kill9()
        server.start()
        notes = _wait_notes(server, token, 1)
        assert len(notes) == 1, notes
        body = str(notes[0]["body"])
        assert "without a clean stop" in body and "checked at start: ok" in body, body
        assert notes[0]["category"] == "system"
        # a clean stop (SIGTERM, as systemd stops it) and a start: nothing new
        assert server.stop() == 0
        assert not shutdown.marker_path(tmp_path / "state").exists()
        server.start()
        time.sleep(1.0)  # the start-up report, if any, would be written by now
        assert len(_unclean_notes(server, token)) == 1
    finally:
        server.stop()


async def test_an_acknowledged_write_is_flushed_at_commit_by_default(settings: Settings) -> None:
    """synchronous=FULL: the commit that answers a client is on disk before the
    answer (a power cut cannot take it back); MC_DB_SYNCHRONOUS=normal opts out."""
    assert settings.db_synchronous == "full"
    for wanted, pragma in (("full", 2), ("normal", 1)):
        db = Database(settings.database_path, readers=1, synchronous=wanted)  # type: ignore[arg-type]
        await db.open()
        try:
            async with db.write() as conn:
                rows = await conn.execute_fetchall("PRAGMA synchronous")
        finally:
            await db.close()
        assert next(iter(rows))[0] == pragma, (wanted, list(rows))
    with pytest.raises(ValueError, match="synchronous"):
        Database(settings.database_path, synchronous="off")  # type: ignore[arg-type]


def test_systemds_boot_id_wins_over_the_kernels(tmp_path: Path) -> None:
    """In a container the unit's /proc shows the host's boot ID; %b does not."""
    kernel = _boot(tmp_path, "host-boot")
    shutdown.claim(tmp_path, given_boot_id="container-boot-1", boot_id_path=kernel)
    marker = shutdown.marker_path(tmp_path)
    marker.write_text(marker.read_text().replace('"pid": ', '"pid": 999999999, "x": '))
    stop = shutdown.claim(tmp_path, given_boot_id="container-boot-2", boot_id_path=kernel)
    assert stop is not None and stop.rebooted is True
