"""Shared fixtures: a fresh SQLite file per test, the real app, an httpx AsyncClient."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.auth import service
from app.core.context import AppContext
from app.core.settings import Settings
from app.main import create_app
from app.security.principal import Scope
from tests.support.api import (
    ADMIN_PASSWORD,
    TokenFactory,
    bearer,
    token_owner_id,
)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """Run every ``async def`` test under anyio's asyncio backend."""
    if inspect.iscoroutinefunction(obj) and name.startswith("test"):
        pytest.mark.anyio(obj)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Tests override this to tune limits."""
    return {}


@pytest.fixture
def settings(tmp_path: Path, settings_overrides: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {
        "database_path": tmp_path / "mc.db",
        "state_dir": tmp_path / "state",
        "rate_limit_per_client": 1000.0,
        "rate_limit_burst_per_client": 1000,
        "rate_limit_per_credential": 1000.0,
        "rate_limit_burst_per_credential": 1000,
        "login_rate_per_minute": 1000,
        "ticket_rate_per_minute": 1000,
    }
    values.update(settings_overrides)
    return Settings(**values)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def ctx(app: FastAPI) -> AppContext:
    context: AppContext = app.state.context
    return context


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def make_token(ctx: AppContext) -> TokenFactory:
    async def factory(scope: Scope, expires_days: int | None = None) -> str:
        created = await service.create_token(
            ctx.db,
            ctx.server_key,
            name=f"test-{scope.value}",
            scope=scope,
            expires_days=expires_days,
            actor="test",
            client="test",
            owner_user_id=await token_owner_id(ctx),
        )
        return created.token

    return factory


@pytest.fixture
async def admin_headers(make_token: TokenFactory) -> dict[str, str]:
    return bearer(await make_token(Scope.ADMIN))


@pytest.fixture
async def admin_user(ctx: AppContext) -> str:
    await service.create_user(
        ctx.db,
        username="alice",
        password=ADMIN_PASSWORD,
        role=Scope.ADMIN,
        actor="test",
        client="test",
    )
    return "alice"
