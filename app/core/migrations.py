"""Versioned, forward-only schema migrations (F28).

Migrations are the ``NNNN_name.sql`` files in ``app/migrations``. Each applied
migration is recorded with its checksum; an applied file that changed, or a
database newer than this code, stops the migration. Before a migration changes
a database that already holds tables, a copy is taken with SQLite's online
backup API.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from app.core.clock import now_iso

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The schema cannot be brought forward safely."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationReport:
    applied: list[int]
    backup: Path | None
    current: int


def bundled_migrations() -> list[Migration]:
    found: list[Migration] = []
    for entry in resources.files("app.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration versions are not contiguous: {versions}")
    return found


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def backup_database(source: sqlite3.Connection, target: Path) -> Path:
    """Copy a live database with the online backup API; the copy is 0600."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    dest = sqlite3.connect(target)
    try:
        source.backup(dest)
    finally:
        dest.close()
    target.chmod(0o600)
    return target


def migrate(
    path: Path, backup_dir: Path, migrations: list[Migration] | None = None
) -> MigrationReport:
    """Apply every pending migration to the database file at ``path``."""
    todo = migrations if migrations is not None else bundled_migrations()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    conn = _connect(path)
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        applied = {
            row[0]: row[1]
            for row in conn.execute("SELECT version, checksum FROM schema_migrations")
        }
        known = {m.version: m for m in todo}
        for version, checksum in applied.items():
            if version not in known:
                raise MigrationError(
                    f"database is at schema version {max(applied)}, newer than this release"
                )
            if known[version].checksum != checksum:
                raise MigrationError(f"applied migration {version:04d} was changed after release")
        pending = [m for m in todo if m.version not in applied]
        backup: Path | None = None
        if pending:
            has_tables = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type='table'"
                " AND name NOT IN ('schema_migrations') AND name NOT LIKE 'sqlite_%'"
            ).fetchone()[0]
            if has_tables:
                stamp = now_iso().replace(":", "").replace(".", "")
                backup = backup_database(
                    conn, backup_dir / f"pre-migrate-{pending[0].version:04d}-{stamp}.db"
                )
        for migration in pending:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
                    " VALUES (?, ?, ?, ?)",
                    (migration.version, migration.name, migration.checksum, now_iso()),
                )
                conn.execute("COMMIT")
            except Exception:
                conn.execute("ROLLBACK")
                raise
        current = max([*applied, *(m.version for m in pending)], default=0)
        return MigrationReport([m.version for m in pending], backup, current)
    finally:
        conn.close()


def _statements(sql: str) -> list[str]:
    """Split a migration into complete statements (triggers hold inner semicolons)."""
    statements: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not buffer.strip():
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise MigrationError("migration ends with an incomplete statement")
    return statements


def schema_version(path: Path) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()
