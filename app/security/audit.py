"""Append-only, hash-chained audit log.

Each record carries the hash of the one before it, so editing or removing a
record in the middle breaks the chain at that point. SQL triggers refuse
UPDATE and DELETE; ``missionctl audit verify`` finds the first broken link.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import aiosqlite

from app.core.clock import now_iso
from app.core.database import Database

GENESIS = "0" * 64
_VERIFY_BATCH = 1000


def _digest(prev_hash: str, fields: tuple[str, ...]) -> str:
    material = json.dumps([prev_hash, *fields], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()


async def append(
    conn: aiosqlite.Connection,
    *,
    actor: str,
    action: str,
    target: str = "",
    client: str = "",
    outcome: str = "ok",
    summary: dict[str, Any] | None = None,
) -> int:
    """Append one record inside the caller's write transaction."""
    async with conn.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1") as cursor:
        row = await cursor.fetchone()
    prev_hash = row[0] if row else GENESIS
    ts = now_iso()
    summary_text = json.dumps(summary or {}, sort_keys=True, separators=(",", ":"))
    fields = (ts, actor, action, target, client, outcome, summary_text)
    record_hash = _digest(prev_hash, fields)
    cursor = await conn.execute(
        "INSERT INTO audit_log (ts, actor, action, target, client, outcome, summary,"
        " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (*fields, prev_hash, record_hash),
    )
    return int(cursor.lastrowid or 0)


async def record(db: Database, **fields: Any) -> int:
    """Append one record in a transaction of its own."""
    async with db.write() as conn:
        return await append(conn, **fields)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad_id: int | None = None
    reason: str | None = None


async def verify(db: Database) -> ChainReport:
    """Walk the whole chain; report the first record whose link or hash is wrong."""
    prev_hash = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows = await db.fetch_all(
            "SELECT id, ts, actor, action, target, client, outcome, summary, prev_hash, hash"
            " FROM audit_log WHERE id > ? ORDER BY id LIMIT ?",
            (last_id, _VERIFY_BATCH),
        )
        if not rows:
            return ChainReport(True, checked)
        for row in rows:
            fields = tuple(str(row[k]) for k in range(1, 8))
            if row["prev_hash"] != prev_hash:
                return ChainReport(False, checked, int(row["id"]), "link to previous record broken")
            if _digest(prev_hash, fields) != row["hash"]:
                return ChainReport(False, checked, int(row["id"]), "record content changed")
            prev_hash = str(row["hash"])
            checked += 1
            last_id = int(row["id"])


#: the audited actions that write the words of automation, per kind of author
#: target (``rule:<id>``, ``schedule:<id>``): the two-person rule compares the
#: people behind them
AUTHORING_ACTIONS: dict[str, tuple[str, ...]] = {
    "rule": ("rule.create", "rule.update"),
    "schedule": ("schedule.create", "schedule.update"),
}


async def authors(conn: aiosqlite.Connection, target: str) -> set[str]:
    """Every actor who wrote or changed ``target`` (``<kind>:<id>``), from the log."""
    actions = AUTHORING_ACTIONS.get(target.partition(":")[0], ())
    if not actions:
        return set()
    marks = ",".join("?" for _ in actions)
    async with conn.execute(
        f"SELECT DISTINCT actor FROM audit_log WHERE action IN ({marks}) AND target = ?"
        " AND outcome = 'ok'",
        (*actions, target),
    ) as cursor:
        return {str(row[0]) for row in await cursor.fetchall()}
