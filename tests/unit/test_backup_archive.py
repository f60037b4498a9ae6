"""Backups: online snapshot, integrity check, checksum, rotation, restore (F18)."""

from __future__ import annotations

import gzip
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.backup.archive import (
    BackupError,
    create_backup,
    list_backups,
    restore_backup,
    rotate,
    verify_backup,
)
from app.core.migrations import migrate


def make_db(path: Path, rows: int = 10) -> None:
    migrate(path, path.parent / "pre")
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT INTO users (username, password_hash, role, created_at, updated_at,"
        " password_changed_at) VALUES (?, 'h', 'read', 't', 't', 't')",
        [(f"user{i}",) for i in range(rows)],
    )
    conn.commit()
    conn.close()


def count_users(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM users").fetchone()[0])
    finally:
        conn.close()


def test_backup_is_compressed_private_checksummed_and_restorable(tmp_path: Path) -> None:
    db = tmp_path / "mc.db"
    make_db(db, 10)
    info = create_backup(db, tmp_path / "backups")
    assert info.path.name.endswith(".db.gz") and info.path.stat().st_mode & 0o077 == 0
    assert info.path.with_name(info.path.name + ".sha256").exists()
    make_db_more = sqlite3.connect(db)
    make_db_more.execute("DELETE FROM users WHERE username = 'user3'")
    make_db_more.execute(
        "INSERT INTO users (username, password_hash, role, created_at, updated_at,"
        " password_changed_at) VALUES ('late', 'h', 'read', 't', 't', 't')"
    )
    make_db_more.commit()
    make_db_more.close()
    safety = restore_backup(info.path, db, tmp_path / "backups")
    assert count_users(db) == 10
    names = {r[0] for r in sqlite3.connect(db).execute("SELECT username FROM users")}
    assert "user3" in names and "late" not in names
    assert count_users(safety) == 10  # the replaced database: 9 + late


def test_backup_taken_while_writes_continue_is_consistent(tmp_path: Path) -> None:
    db = tmp_path / "mc.db"
    make_db(db, 0)
    stop = threading.Event()

    def writer() -> None:
        conn = sqlite3.connect(db, timeout=10)
        i = 0
        while not stop.is_set() and i < 20_000:
            conn.execute(
                "INSERT INTO users (username, password_hash, role, created_at, updated_at,"
                " password_changed_at) VALUES (?, 'h', 'read', 't', 't', 't')",
                (f"w{i}",),
            )
            conn.commit()
            i += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.2)
    try:
        info = create_backup(db, tmp_path / "backups")
    finally:
        stop.set()
        thread.join(timeout=30)
    copy = verify_backup(info.path)
    assert sqlite3.connect(copy).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_corrupted_or_truncated_backup_is_refused_and_live_db_untouched(tmp_path: Path) -> None:
    db = tmp_path / "mc.db"
    make_db(db, 5)
    info = create_backup(db, tmp_path / "backups")
    data = info.path.read_bytes()
    truncated = tmp_path / "backups" / "mission-control-20200101T000000Z.db.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(BackupError, match="truncated"):
        restore_backup(truncated, db, tmp_path / "safety")
    tampered = info.path
    tampered.write_bytes(data[:-10] + b"0123456789")
    with pytest.raises(BackupError, match="checksum"):
        restore_backup(tampered, db, tmp_path / "safety")
    garbage = tmp_path / "garbage.db.gz"
    with gzip.open(garbage, "wb") as handle:
        handle.write(b"this is not sqlite" * 100)
    with pytest.raises(BackupError, match=r"damaged|not a Mission Control"):
        restore_backup(garbage, db, tmp_path / "safety")
    assert count_users(db) == 5
    assert not (tmp_path / "safety").exists() or not list((tmp_path / "safety").iterdir())


def test_rotation_keeps_dailies_and_weeklies(tmp_path: Path) -> None:
    db = tmp_path / "mc.db"
    make_db(db, 1)
    start = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    for day in range(60):
        create_backup(db, tmp_path / "b", now=start + timedelta(days=day))
    deleted = rotate(tmp_path / "b", keep_daily=7, keep_weekly=4)
    left = list_backups(tmp_path / "b")
    assert len(left) <= 11 and len(left) >= 7
    assert len(deleted) == 60 - len(left)
    newest = [b.taken_at for b in left[:7]]
    assert newest == [start + timedelta(days=59 - i) for i in range(7)]


def test_backup_refuses_when_space_is_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil as shutil_module
    from collections import namedtuple

    db = tmp_path / "mc.db"
    make_db(db, 1)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda _: usage(100, 100, 0))
    with pytest.raises(BackupError, match="free space"):
        create_backup(db, tmp_path / "b")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as another user")
def test_restore_as_root_keeps_the_service_user_as_owner(tmp_path: Path) -> None:
    db = tmp_path / "mc.db"
    make_db(db, 2)
    info = create_backup(db, tmp_path / "backups")
    os.chown(db, 65534, 65534)
    restore_backup(info.path, db, tmp_path / "backups")
    assert (db.stat().st_uid, db.stat().st_gid) == (65534, 65534)
