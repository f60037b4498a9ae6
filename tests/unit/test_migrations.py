"""Versioned, forward-only migrations with a backup first (F28)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.core.migrations import Migration, MigrationError, bundled_migrations, migrate


def test_fresh_database_gets_every_migration_and_no_backup(tmp_path: Path) -> None:
    report = migrate(tmp_path / "db", tmp_path / "backups")
    assert report.applied == [m.version for m in bundled_migrations()]
    assert report.backup is None
    assert (tmp_path / "db").stat().st_mode & 0o077 == 0
    again = migrate(tmp_path / "db", tmp_path / "backups")
    assert again.applied == [] and again.backup is None


def test_existing_database_is_copied_before_a_migration(tmp_path: Path) -> None:
    db = tmp_path / "db"
    base = bundled_migrations()
    migrate(db, tmp_path / "backups", base)
    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO users (username, password_hash, role, created_at, updated_at,"
        " password_changed_at) VALUES ('keep', 'h', 'read', 't', 't', 't')"
    )
    conn.commit()
    conn.close()
    extra = Migration(len(base) + 1, "add_column", "ALTER TABLE users ADD COLUMN note TEXT;")
    report = migrate(db, tmp_path / "backups", [*base, extra])
    assert report.applied == [extra.version]
    assert report.backup is not None and report.backup.exists()
    assert report.backup.stat().st_mode & 0o077 == 0
    copy = sqlite3.connect(report.backup)
    assert copy.execute("SELECT username FROM users").fetchall() == [("keep",)]
    columns = [r[1] for r in copy.execute("PRAGMA table_info(users)")]
    assert "note" not in columns
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_changed_applied_migration_is_refused(tmp_path: Path) -> None:
    base = bundled_migrations()
    migrate(tmp_path / "db", tmp_path / "b", base)
    edited = [Migration(base[0].version, base[0].name, base[0].sql + "\n-- edited\n"), *base[1:]]
    with pytest.raises(MigrationError, match="changed"):
        migrate(tmp_path / "db", tmp_path / "b", edited)


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    base = bundled_migrations()
    extra = Migration(len(base) + 1, "future", "CREATE TABLE future (id INTEGER);")
    migrate(tmp_path / "db", tmp_path / "b", [*base, extra])
    with pytest.raises(MigrationError, match="newer"):
        migrate(tmp_path / "db", tmp_path / "b", base)


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    base = bundled_migrations()
    migrate(tmp_path / "db", tmp_path / "b", base)
    broken = Migration(
        len(base) + 1, "broken", "CREATE TABLE half (id INTEGER);\nINSERT INTO nowhere VALUES (1);"
    )
    with pytest.raises(sqlite3.OperationalError):
        migrate(tmp_path / "db", tmp_path / "b", [*base, broken])
    conn = sqlite3.connect(tmp_path / "db")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "half" not in tables
    version = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
    assert version == len(base)


def test_database_pragmas(tmp_path: Path) -> None:
    migrate(tmp_path / "db", tmp_path / "b")
    conn = sqlite3.connect(tmp_path / "db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
