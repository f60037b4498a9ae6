"""SD-card care: an idle worker and read-only traffic write (almost) nothing.

The rate itself is measured by ``bench/bench_idle_writes.py`` (``/proc/<pid>/io``
of real processes over a minute); these tests pin the mechanisms.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.context import AppContext
from app.runner import worker as worker_module
from app.security.principal import Scope
from tests.support.api import TokenFactory, bearer
from tests.support.worker import make_settings, running_worker


def wal_bytes(database: Path) -> bytes:
    wal = Path(f"{database}-wal")
    return wal.read_bytes() if wal.exists() else b""


def data_version(database: Path) -> int:
    conn = sqlite3.connect(database)
    try:
        return int(conn.execute("PRAGMA data_version").fetchone()[0])
    finally:
        conn.close()


async def test_an_idle_worker_rewrites_its_heartbeat_only_to_prove_liveness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[dict[str, Any]] = []
    real = worker_module.write_heartbeat

    async def counting(*args: Any, **kwargs: Any) -> None:
        writes.append(kwargs["state"])
        await real(*args, **kwargs)

    monkeypatch.setattr(worker_module, "write_heartbeat", counting)
    settings = make_settings(tmp_path, worker_heartbeat_quiet_max_s=1.0)
    async with running_worker(settings, heartbeat_s=0.05) as worker:
        assert len(writes) == 1  # start-up announces the worker
        loop = asyncio.create_task(worker._heartbeat_loop())
        try:
            await asyncio.sleep(0.5)
            assert len(writes) == 1  # nothing changed: ten looks, no write
            await asyncio.sleep(0.8)
            assert len(writes) == 2  # but liveness is still proven
            worker._running[4242] = asyncio.Event()  # a change is written at once
            worker._changed.set()
            await asyncio.sleep(0.15)
            assert len(writes) == 3 and writes[-1]["running"] == [4242]
        finally:
            worker._closing.set()
            worker._changed.set()
            await loop
    assert len(writes) == 4  # and close() writes the last one


async def test_read_only_traffic_commits_nothing_until_the_batched_flush(
    client: httpx.AsyncClient, ctx: AppContext, make_token: TokenFactory
) -> None:
    headers = bearer(await make_token(Scope.READ))
    database = ctx.settings.database_path
    await client.get("/api/health", headers=headers)
    await ctx.usage.flush(ctx.settings.session_idle_minutes)
    before_version, before_wal = data_version(database), wal_bytes(database)
    for path in ("/api/health", "/api/tasks", "/api/notifications", "/api/events", "/healthz"):
        for _ in range(5):
            assert (await client.get(path, headers=headers)).status_code == 200, path
    assert data_version(database) == before_version
    assert wal_bytes(database) == before_wal
    # what was deferred is one small transaction
    assert await ctx.usage.flush(ctx.settings.session_idle_minutes) == 1
    assert wal_bytes(database) != before_wal


async def test_the_idle_housekeeping_writes_no_page(ctx: AppContext) -> None:
    """What ``_housekeeping`` does every minute, on an idle service: no WAL frame."""
    from app.auth import store as auth_store

    database = ctx.settings.database_path
    before = wal_bytes(database)
    for _ in range(3):
        await ctx.usage.flush(ctx.settings.session_idle_minutes)
        async with ctx.db.write() as conn:
            await auth_store.purge_expired_sessions(conn)
    assert wal_bytes(database) == before
