"""The audit log is append-only and hash-chained; tampering is found."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.core.database import Database
from app.core.migrations import migrate
from app.security import audit


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    migrate(tmp_path / "db", tmp_path / "b")
    database = Database(tmp_path / "db", readers=1)
    await database.open()
    yield database
    await database.close()


async def fill(db: Database, count: int) -> None:
    for i in range(count):
        await audit.record(db, actor=f"user:u{i}", action="test.event", summary={"i": i})


async def test_intact_chain_verifies(db: Database) -> None:
    await fill(db, 25)
    report = await audit.verify(db)
    assert report.ok and report.checked == 25


async def test_update_and_delete_are_refused(db: Database) -> None:
    await fill(db, 2)
    conn = sqlite3.connect(db.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor = 'x' WHERE id = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit_log WHERE id = 1")


def _tamper(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("DROP TRIGGER audit_log_no_delete")
    conn.execute(sql)
    conn.commit()
    conn.close()


async def test_an_edited_record_is_reported(db: Database) -> None:
    await fill(db, 10)
    _tamper(db.path, "UPDATE audit_log SET summary = '{\"i\":99}' WHERE id = 6")
    report = await audit.verify(db)
    assert not report.ok
    assert report.first_bad_id == 6 and report.checked == 5
    assert report.reason == "record content changed"


async def test_a_removed_record_is_reported(db: Database) -> None:
    await fill(db, 10)
    _tamper(db.path, "DELETE FROM audit_log WHERE id = 4")
    report = await audit.verify(db)
    assert not report.ok and report.first_bad_id == 5
    assert report.reason == "link to previous record broken"


async def test_a_rehashed_record_still_breaks_the_link(db: Database) -> None:
    await fill(db, 5)
    _tamper(
        db.path,
        "UPDATE audit_log SET actor = 'user:mallory', hash = 'f' || substr(hash, 2) WHERE id = 2",
    )
    report = await audit.verify(db)
    assert not report.ok and report.first_bad_id == 2
