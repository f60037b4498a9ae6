"""Versions of the data that enters an agent's prompt beside its identity: an
agent's memory and a project's documents (docs/security-model.md, "Memory and
documents").

Entries are added and removed, never edited; every addition or removal writes
the whole live set as a new version (who, when, why), rendered with each entry's
number and attribution, so the diff of two versions shows exactly which entries
came and went. The diff is the identity's (:mod:`app.core.textdiff`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import aiosqlite

from app.agents.schemas import IdentityDiff, IdentityVersion
from app.core.clock import now_iso
from app.core.database import Database, Row
from app.core.pagination import PageParams
from app.core.textdiff import version_diff

Subject = Literal["agent_memory", "project_documents"]
MEMORY: Subject = "agent_memory"
DOCUMENTS: Subject = "project_documents"
_WHAT = {MEMORY: "memory", DOCUMENTS: "documents"}


class DataVersion(IdentityVersion):
    """One version of an agent's memory or a project's documents (the whole set)."""


class DataDiff(IdentityDiff):
    """The line diff of two versions (0 is the empty set)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A live memory entry or document as a version holds it."""

    id: int
    title: str
    text: str
    created_by: str
    created_at: str


def render(kind: str, entries: Iterable[Entry]) -> str:
    """The set as one text: a header line per entry (number, title, who, when), then
    its text; entries in the order they were added."""
    blocks = []
    for entry in entries:
        title = f' "{entry.title}"' if entry.title else ""
        header = f"## {kind} #{entry.id}{title} · added by {entry.created_by} · {entry.created_at}"
        blocks.append(f"{header}\n{entry.text}")
    return "\n\n".join(blocks)


async def record(
    conn: aiosqlite.Connection,
    subject: Subject,
    subject_id: int,
    text: str,
    reason: str,
    actor: str,
) -> int:
    """Write ``text`` (see :func:`render`) as the next version; returns its number."""
    async with conn.execute(
        "SELECT coalesce(max(version), 0) FROM data_versions WHERE subject = ? AND subject_id = ?",
        (subject, subject_id),
    ) as cursor:
        row = await cursor.fetchone()
    version = int(row[0] if row else 0) + 1
    await conn.execute(
        "INSERT INTO data_versions (subject, subject_id, version, text, reason, created_by,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (subject, subject_id, version, text, reason, actor, now_iso()),
    )
    return version


async def versions(
    db: Database, subject: Subject, subject_id: int, page: PageParams
) -> tuple[list[DataVersion], int]:
    """Newest first."""
    rows = await db.fetch_all(
        "SELECT version, text, reason, created_by, created_at FROM data_versions"
        " WHERE subject = ? AND subject_id = ? ORDER BY version DESC LIMIT ? OFFSET ?",
        (subject, subject_id, page.limit, page.offset),
    )
    total = await db.fetch_one(
        "SELECT count(*) FROM data_versions WHERE subject = ? AND subject_id = ?",
        (subject, subject_id),
    )
    return [_version(r) for r in rows], int(total[0]) if total else 0


async def latest(db: Database, subject: Subject, subject_id: int) -> int:
    row = await db.fetch_one(
        "SELECT coalesce(max(version), 0) FROM data_versions WHERE subject = ? AND subject_id = ?",
        (subject, subject_id),
    )
    return int(row[0]) if row else 0


async def diff(
    db: Database, subject: Subject, subject_id: int, from_version: int, to_version: int
) -> DataDiff:
    async def load(version: int) -> str | None:
        row = await db.fetch_one(
            "SELECT text FROM data_versions WHERE subject = ? AND subject_id = ? AND version = ?",
            (subject, subject_id, version),
        )
        return None if row is None else str(row["text"])

    text = await version_diff(load, from_version, to_version, _WHAT[subject])
    return DataDiff(from_version=from_version, to_version=to_version, diff=text)


def _version(row: Row) -> DataVersion:
    return DataVersion(**dict(row))
