"""Create, verify, rotate and restore database backups.

A backup is ``mission-control-<UTC stamp>.db.gz`` plus ``.sha256`` beside it:
an online snapshot taken with SQLite's backup API (writers keep going),
checked with ``PRAGMA integrity_check`` before it is compressed.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

PREFIX = "mission-control-"
SUFFIX = ".db.gz"
STAMP = "%Y%m%dT%H%M%SZ"
MIN_FREE_FACTOR = 2.0  # free space needed, as a multiple of the database size


class BackupError(RuntimeError):
    """A backup could not be made, verified or restored; the message says why."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    taken_at: datetime
    size: int


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    except sqlite3.DatabaseError as exc:
        return f"not a Mission Control database ({exc.__class__.__name__})"
    finally:
        conn.close()
    result = "; ".join(str(r[0]) for r in rows)
    return "ok" if result == "ok" else result[:200]


def _private_tempdir(parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return Path(tempfile.mkdtemp(prefix=".backup-", dir=parent))


def create_backup(database: Path, backup_dir: Path, now: datetime | None = None) -> BackupInfo:
    """Snapshot ``database`` into ``backup_dir``; returns the verified archive."""
    if not database.exists():
        raise BackupError(f"no database at {database}")
    backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    needed = database.stat().st_size * MIN_FREE_FACTOR
    free = shutil.disk_usage(backup_dir).free
    if free < needed:
        raise BackupError(
            f"not enough free space in {backup_dir}: {free} bytes free, {int(needed)} needed"
        )
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    name = f"{PREFIX}{moment.strftime(STAMP)}{SUFFIX}"
    work = _private_tempdir(backup_dir)
    try:
        snapshot = work / "snapshot.db"
        source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        dest = sqlite3.connect(snapshot)
        try:
            source.backup(dest, pages=256)
        finally:
            dest.close()
            source.close()
        verdict = _integrity(snapshot)
        if verdict != "ok":
            raise BackupError(f"the snapshot failed its integrity check: {verdict}")
        partial = work / name
        with snapshot.open("rb") as raw, gzip.open(partial, "wb", compresslevel=6) as packed:
            shutil.copyfileobj(raw, packed, 1 << 20)
        partial.chmod(0o600)
        checksum = _sha256(partial)
        final = backup_dir / name
        partial.replace(final)
        sums = final.with_name(final.name + ".sha256")
        sums.write_text(f"{checksum}  {final.name}\n")
        sums.chmod(0o600)
        return BackupInfo(final, moment, final.stat().st_size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def verify_backup(archive: Path) -> Path:
    """Check the checksum and the database inside; return a temporary
    decompressed copy (the caller removes its folder)."""
    if not archive.is_file():
        raise BackupError(f"no backup file at {archive}")
    sums = archive.with_name(archive.name + ".sha256")
    if sums.exists():
        expected = sums.read_text().split()[0] if sums.read_text().split() else ""
        if expected != _sha256(archive):
            raise BackupError(f"{archive.name} does not match its checksum: refusing it")
    work = _private_tempdir(archive.parent)
    copy = work / "restore.db"
    try:
        with gzip.open(archive, "rb") as packed, copy.open("wb") as raw:
            shutil.copyfileobj(packed, raw, 1 << 20)
    except (OSError, EOFError) as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise BackupError(f"{archive.name} is truncated or not a backup archive") from exc
    verdict = _integrity(copy)
    if verdict != "ok":
        shutil.rmtree(work, ignore_errors=True)
        raise BackupError(f"{archive.name} holds a damaged database: {verdict}")
    return copy


def restore_backup(archive: Path, database: Path, safety_dir: Path) -> Path:
    """Replace ``database`` with the archive's copy; keep a safety copy of the
    current database first. Returns the safety copy's path."""
    copy = verify_backup(archive)
    try:
        safety = safety_dir / f"before-restore-{datetime.now(UTC).strftime(STAMP)}.db"
        safety_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if database.exists():
            live = sqlite3.connect(database)
            dest = sqlite3.connect(safety)
            try:
                live.backup(dest)
            finally:
                dest.close()
                live.close()
            safety.chmod(0o600)
        staged = database.with_name(database.name + ".restoring")
        shutil.copyfile(copy, staged)
        staged.chmod(0o600)
        if database.exists():
            # keep the owner (root restoring for the service user must not take it)
            owner = database.stat()
            if os.geteuid() == 0:
                os.chown(staged, owner.st_uid, owner.st_gid)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                database.with_name(database.name + suffix).unlink()
        staged.replace(database)
        if _integrity(database) != "ok":
            raise BackupError("the restored database failed its integrity check")
        return safety
    finally:
        shutil.rmtree(copy.parent, ignore_errors=True)


def list_backups(backup_dir: Path) -> list[BackupInfo]:
    found: list[BackupInfo] = []
    if not backup_dir.is_dir():
        return found
    for path in backup_dir.glob(f"{PREFIX}*{SUFFIX}"):
        stamp = path.name[len(PREFIX) : -len(SUFFIX)]
        try:
            taken = datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)
        except ValueError:
            continue
        found.append(BackupInfo(path, taken, path.stat().st_size))
    return sorted(found, key=lambda b: b.taken_at, reverse=True)


def rotate(backup_dir: Path, keep_daily: int = 7, keep_weekly: int = 4) -> list[Path]:
    """Keep the newest backup of each of the last ``keep_daily`` days and of each
    of the last ``keep_weekly`` ISO weeks; delete the rest. Returns what was deleted."""
    backups = list_backups(backup_dir)
    keep: set[Path] = set()
    days: list[str] = []
    weeks: list[str] = []
    for backup in backups:  # newest first
        day = backup.taken_at.strftime("%Y-%m-%d")
        iso_year, iso_week, _ = backup.taken_at.isocalendar()
        week = f"{iso_year}-{iso_week:02d}"
        if day not in days and len(days) < keep_daily:
            days.append(day)
            keep.add(backup.path)
        if week not in weeks and len(weeks) < keep_weekly:
            weeks.append(week)
            keep.add(backup.path)
    deleted: list[Path] = []
    for backup in backups:
        if backup.path not in keep:
            backup.path.unlink()
            with contextlib.suppress(FileNotFoundError):
                backup.path.with_name(backup.path.name + ".sha256").unlink()
            deleted.append(backup.path)
    return deleted


def newest_backup_age(backup_dir: Path, now: datetime | None = None) -> timedelta | None:
    backups = list_backups(backup_dir)
    if not backups:
        return None
    return (now or datetime.now(UTC)) - backups[0].taken_at
