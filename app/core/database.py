"""One SQLite file in WAL mode: a single writer connection and a small reader pool.

``synchronous=FULL`` (the default, ``MC_DB_SYNCHRONOUS``) fsyncs the WAL at every
commit: a write acknowledged to a client survives a power cut, not only a crash
of the process. It costs one fsync per write transaction (0.6 ms on the
development machine's disk, a few ms on an SD card; reads are not affected).
``normal`` fsyncs only at checkpoints: fewer flushes, but the last commits
before a power cut may be lost (the database itself stays consistent).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import aiosqlite

Row = aiosqlite.Row


Synchronous = Literal["full", "normal"]
_SYNCHRONOUS_PRAGMA: dict[str, str] = {"full": "FULL", "normal": "NORMAL"}


async def _open(
    path: Path, busy_timeout_ms: int, *, readonly: bool, synchronous: Synchronous = "full"
) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    await conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    await conn.execute("PRAGMA foreign_keys=ON")
    if readonly:
        await conn.execute("PRAGMA query_only=ON")
    else:
        # readers commit nothing: the setting only matters on the writer
        await conn.execute(f"PRAGMA synchronous={_SYNCHRONOUS_PRAGMA[synchronous]}")
        await conn.execute("PRAGMA journal_mode=WAL")
    return conn


async def _rollback(conn: aiosqlite.Connection) -> None:
    with contextlib.suppress(sqlite3.OperationalError):
        await conn.execute("ROLLBACK")


class Database:
    """Async access to the database; every query is parameterised by the caller."""

    def __init__(
        self,
        path: Path,
        *,
        readers: int = 3,
        busy_timeout_ms: int = 5000,
        synchronous: Synchronous = "full",
    ) -> None:
        if synchronous not in _SYNCHRONOUS_PRAGMA:
            raise ValueError(f"synchronous must be one of {sorted(_SYNCHRONOUS_PRAGMA)}")
        self.path = path
        self.synchronous: Synchronous = synchronous
        self._readers_wanted = readers
        self._busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._pool: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        #: read-only, used from the event loop's thread only (fetch_all_quick)
        self._quick: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._writer = await _open(
            self.path, self._busy_timeout_ms, readonly=False, synchronous=self.synchronous
        )
        quick = sqlite3.connect(self.path, isolation_level=None)
        quick.row_factory = sqlite3.Row
        for pragma in ("busy_timeout=50", "foreign_keys=ON", "query_only=ON"):
            quick.execute(f"PRAGMA {pragma}")
        self._quick = quick
        for _ in range(self._readers_wanted):
            reader = await _open(self.path, self._busy_timeout_ms, readonly=True)
            self._all_readers.append(reader)
            self._pool.put_nowait(reader)

    async def close(self) -> None:
        if self._quick is not None:
            self._quick.close()
            self._quick = None
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

    # One trip to the connection's thread per query (execute + fetch together):
    # each trip costs far more than a small read itself (see docs/performance.md).
    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """The first row (every caller's query selects one row by key or aggregate)."""
        async with self.read() as conn:
            rows = await conn.execute_fetchall(sql, tuple(params))
        for row in rows:
            return row
        return None

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        async with self.read() as conn:
            return list(await conn.execute_fetchall(sql, tuple(params)))

    async def fetch_one_quick(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        """:meth:`fetch_all_quick` for a read of one row by a unique key."""
        for row in await self.fetch_all_quick(sql, params):
            return row
        return None

    async def fetch_all_quick(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """A small, index-bounded read of a hot path, done at once on the event loop's
        own thread: no trip to a connection thread (which cost more than the read:
        the thread hand-off, its wake-up and the GIL; docs/performance.md).

        Only for queries bounded by an index and a LIMIT (a page of a list): the loop
        waits for them. When the read cannot start at once (SQLITE_BUSY, rare in WAL
        mode), it is done by the reader pool instead, without blocking the loop.
        """
        conn = self._quick
        if conn is None:
            return await self.fetch_all(sql, params)
        try:
            return conn.execute(sql, tuple(params)).fetchall()
        except (sqlite3.OperationalError, sqlite3.ProgrammingError):
            # busy, or called from another thread than the one that opened it
            return await self.fetch_all(sql, params)

    async def ping(self) -> bool:
        row = await self.fetch_one("SELECT 1")
        return row is not None and row[0] == 1


async def database_ok(db: Database, timeout_s: float = 2.0) -> bool:
    """The health probe of the database: answers within ``timeout_s`` or counts as down."""
    try:
        async with asyncio.timeout(timeout_s):
            return await db.ping()
    except Exception:  # any failure means "not ok"; details stay in the server
        return False
