"""One SQLite file in WAL mode: a single writer connection and a small reader pool.

``synchronous=NORMAL`` in WAL mode means a committed transaction survives a
crash of the process, but the last transactions before a power cut may be lost
(the database itself stays consistent). That is the right trade-off for an SD
card: ``FULL`` would fsync the WAL on every commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

Row = aiosqlite.Row


async def _open(path: Path, busy_timeout_ms: int, *, readonly: bool) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    await conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    await conn.execute("PRAGMA foreign_keys=ON")
    await conn.execute("PRAGMA synchronous=NORMAL")
    if readonly:
        await conn.execute("PRAGMA query_only=ON")
    else:
        await conn.execute("PRAGMA journal_mode=WAL")
    return conn


async def _rollback(conn: aiosqlite.Connection) -> None:
    with contextlib.suppress(sqlite3.OperationalError):
        await conn.execute("ROLLBACK")


class Database:
    """Async access to the database; every query is parameterised by the caller."""

    def __init__(self, path: Path, *, readers: int = 3, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self._readers_wanted = readers
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._pool: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []

    async def open(self) -> None:
        self._writer = await _open(self.path, self._busy_timeout_ms, readonly=False)
        for _ in range(self._readers_wanted):
            reader = await _open(self.path, self._busy_timeout_ms, readonly=True)
            self._all_readers.append(reader)
            self._pool.put_nowait(reader)

    async def close(self) -> None:
        for reader in self._all_readers:
            await reader.close()
        self._all_readers.clear()
        if self._writer is not None:
            await self._writer.close()
            self._writer = None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One serialised write transaction; rolled back on any exception,
        including a cancellation while BEGIN or COMMIT is still in flight."""
        if self._writer is None:
            raise RuntimeError("database is not open")
        async with self._write_lock:
            conn = self._writer
            try:
                await conn.execute("BEGIN IMMEDIATE")
                yield conn
                await conn.execute("COMMIT")
            except BaseException:
                # aiosqlite runs statements in order on one thread, so this
                # ROLLBACK lands after a BEGIN/COMMIT that was cancelled mid-way.
                await asyncio.shield(_rollback(conn))
                raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[aiosqlite.Connection]:
        conn = await self._pool.get()
        try:
            yield conn
        finally:
            self._pool.put_nowait(conn)

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        async with self.read() as conn, conn.execute(sql, tuple(params)) as cursor:
            row: Row | None = await cursor.fetchone()
            return row

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        async with self.read() as conn, conn.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def ping(self) -> bool:
        row = await self.fetch_one("SELECT 1")
        return row is not None and row[0] == 1
