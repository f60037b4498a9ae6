"""``missionctl backup`` and ``missionctl monitor`` as processes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.support.cli import missionctl


def test_backup_create_verify_restore_cycle(tmp_path: Path) -> None:
    missionctl(tmp_path, "first-run")
    created = missionctl(tmp_path, "backup", "create")
    assert created.returncode == 0, created.stderr
    listing = missionctl(tmp_path, "backup", "list")
    archive = listing.stdout.split()[-1]
    assert missionctl(tmp_path, "backup", "verify", archive).returncode == 0
    missionctl(tmp_path, "user", "create", "later", "--password-stdin", stdin="long password 12\n")
    restored = missionctl(tmp_path, "backup", "restore", archive, "--no-service")
    assert restored.returncode == 0, restored.stderr
    users = {
        r[0] for r in sqlite3.connect(tmp_path / "mc.db").execute("SELECT username FROM users")
    }
    assert users == {"admin"}
    bad = tmp_path / "bad.db.gz"
    bad.write_bytes(b"nope")
    refused = missionctl(tmp_path, "backup", "restore", str(bad), "--no-service")
    assert refused.returncode == 1 and "not changed" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_monitor_notifies_once_about_a_missing_backup(tmp_path: Path) -> None:
    missionctl(tmp_path, "first-run")
    first = missionctl(tmp_path, "monitor")
    assert "No backup yet" in first.stdout
    missionctl(tmp_path, "monitor")
    conn = sqlite3.connect(tmp_path / "mc.db")
    titles = [r[0] for r in conn.execute("SELECT title FROM notifications")]
    assert titles.count("No backup yet") == 1
    missionctl(tmp_path, "backup", "create")
    assert "No backup" not in missionctl(tmp_path, "monitor").stdout
