"""Public health says only ok or degraded; details need a credential (F5)."""

from __future__ import annotations

import httpx
import pytest

from app.core.context import AppContext
from tests.support.api import assert_error_shape


async def test_healthz_says_only_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_healthz_says_only_degraded_when_the_database_fails(
    client: httpx.AsyncClient, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> bool:
        raise RuntimeError("database disk image is malformed at /var/lib/mission-control")

    monkeypatch.setattr(ctx.db, "ping", broken)
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "degraded"}
    assert "malformed" not in response.text and "/var/lib" not in response.text


async def test_details_need_read_scope_and_carry_figures(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    assert_error_shape(await client.get("/api/health"), 401, "unauthenticated")
    details = (await client.get("/api/health", headers=admin_headers)).json()
    assert details["database"]["ok"] is True and details["database"]["bytes"] > 0
    for key in ("disk_free_bytes", "memory_available_bytes", "load_average", "system_uptime_s"):
        assert key in details["system"]
    assert "workers" in details and "last_backup_age_s" in details
