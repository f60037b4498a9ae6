"""The per-process state every request needs, built once at start-up."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from app.core.alerts import AlertThrottle, RefusalAggregator
from app.core.bus import EventBus
from app.core.database import Database
from app.core.login_throttle import LoginThrottle
from app.core.ratelimit import RateLimiter
from app.core.settings import Settings
from app.core.usage import UsageRecorder


@dataclass
class AppContext:
    settings: Settings
    db: Database
    server_key: bytes
    credential_limiter: RateLimiter
    login_throttle: LoginThrottle
    usage: UsageRecorder
    bus: EventBus
    alerts: AlertThrottle
    started_monotonic: float = field(default_factory=time.monotonic)
    #: refused anonymous requests, counted per client, route and minute
    refusals: RefusalAggregator = field(default_factory=RefusalAggregator)

    @classmethod
    def build(cls, settings: Settings, db: Database, server_key: bytes) -> AppContext:
        return cls(
            settings=settings,
            db=db,
            server_key=server_key,
            credential_limiter=RateLimiter(
                settings.rate_limit_per_credential, settings.rate_limit_burst_per_credential
            ),
            login_throttle=LoginThrottle(
                failures_before_lockout=settings.login_failures_before_lockout,
                max_lockout_s=settings.login_lockout_max_s,
                user_ceiling=settings.login_failures_user_ceiling,
            ),
            usage=UsageRecorder(db),
            bus=EventBus(),
            alerts=AlertThrottle(),
            refusals=RefusalAggregator(settings.refused_anonymous_window_s),
        )


# async: FastAPI runs a plain ``def`` dependency in a thread pool, a thread hop per request
async def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


if TYPE_CHECKING:
    from fastapi import Depends, Request

    Ctx = Annotated[AppContext, Depends(get_context)]
else:

    def __getattr__(name: str) -> object:
        """``Ctx`` is built on first use, so FastAPI is imported by the API only: the
        worker imports this module too and never serves HTTP (idle memory: docs/performance.md)."""
        if name == "Ctx":
            import fastapi

            globals()["Request"] = fastapi.Request  # get_context's annotation
            globals()["Ctx"] = Annotated[AppContext, fastapi.Depends(get_context)]
            return globals()["Ctx"]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
