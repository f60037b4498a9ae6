"""Builds the FastAPI application: middleware, routers, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import iter_route_contexts

from app import __version__
from app.access.dependencies import ReadAccess
from app.access.refusals import anonymous_refusals_job
from app.agents.router import router as agents_router
from app.audit.router import router as audit_router
from app.auth import store as auth_store
from app.auth.account_router import router as account_router
from app.auth.admin_router import router as admin_router
from app.auth.router import router as auth_router
from app.backup.router import router as backups_router
from app.care import shutdown as shutdown_marker
from app.care.middleware import DiskGuardMiddleware
from app.conversations.router import router as conversations_router
from app.core.apidocs import render_operations
from app.core.context import AppContext
from app.core.database import Database
from app.core.errors import install_error_handlers
from app.core.middleware import EdgeMiddleware
from app.core.migrations import migrate
from app.core.settings import Settings, get_settings
from app.escalations.router import router as escalations_router
from app.feed.router import router as events_router
from app.health.router import router as health_router
from app.health.sampler import health_sampler
from app.health.samples import router as health_samples_router
from app.missions.router import router as missions_router
from app.notifications.router import router as notifications_router
from app.policies.router import router as policies_router
from app.projects.router import router as projects_router
from app.retention.job import retention_job
from app.rules.engine import rules_engine
from app.rules.router import router as rules_router
from app.schedules.router import router as schedules_router
from app.security.secrets import server_key
from app.tasks.follow_up_router import router as follow_up_router
from app.tasks.router import router as tasks_router
from app.ui.pages.account import router as ui_account_router
from app.ui.pages.agents import router as ui_agents_router
from app.ui.pages.audit import router as ui_audit_router
from app.ui.pages.backups import router as ui_backups_router
from app.ui.pages.dashboard import router as ui_dashboard_router
from app.ui.pages.data import router as ui_data_router
from app.ui.pages.escalations import router as ui_escalations_router
from app.ui.pages.health import router as ui_health_router
from app.ui.pages.missions import router as ui_missions_router
from app.ui.pages.notifications import router as ui_notifications_router
from app.ui.pages.rules import router as ui_rules_router
from app.ui.pages.schedules import router as ui_schedules_router
from app.ui.pages.settings import router as ui_settings_router
from app.ui.pages.tasks import router as ui_tasks_router
from app.ui.pages.vpn import router as ui_vpn_router
from app.ui.public import router as ui_public_router
from app.vpn.router import router as vpn_router
from app.wiring import build_context

log = logging.getLogger("mission_control.app")

# Routes that answer without a credential. Everything else must return 401.
PUBLIC_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/healthz"),
        ("POST", "/api/auth/login"),
        # the web UI's login page and its assets (app/ui); every /ui/... needs a session
        ("GET", "/"),
        ("GET", "/static/app.css"),
        ("GET", "/static/login.js"),
        ("GET", "/static/icon.svg"),
        ("GET", "/static/manifest.webmanifest"),
        ("GET", "/static/icon-192.png"),
        ("GET", "/static/icon-512.png"),
    }
)


def route_table(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the application answers, included routers too."""
    table: list[tuple[str, str]] = []
    for context in iter_route_contexts(app.routes):
        methods = getattr(context.original_route, "methods", None) or set()
        table.extend((method, str(context.path)) for method in sorted(methods))
    return table


async def _housekeeping(ctx: AppContext) -> None:
    """Flush batched last-used times and purge ended sessions, forever."""
    while True:
        await asyncio.sleep(ctx.settings.last_used_flush_s)
        try:
            await ctx.usage.flush(ctx.settings.session_idle_minutes)
            async with ctx.db.write() as conn:
                await auth_store.purge_expired_sessions(conn)
        except Exception:
            log.exception("housekeeping failed")


# Every router of the application, one line each.
ROUTERS: list[APIRouter] = [
    health_router,
    health_samples_router,
    auth_router,
    account_router,
    admin_router,
    audit_router,
    # domain routers
    missions_router,
    tasks_router,
    schedules_router,
    conversations_router,
    follow_up_router,
    rules_router,
    policies_router,
    events_router,
    notifications_router,
    escalations_router,
    projects_router,
    agents_router,
    backups_router,
    vpn_router,
    ui_public_router,
    ui_dashboard_router,
    ui_agents_router,
    ui_data_router,
    ui_missions_router,
    ui_tasks_router,
    ui_schedules_router,
    ui_rules_router,
    ui_notifications_router,
    ui_escalations_router,
    ui_audit_router,
    ui_health_router,
    ui_backups_router,
    ui_settings_router,
    ui_account_router,
    ui_vpn_router,
]

# Long-running jobs of the API process, each ``async def job(ctx) -> None``.
BACKGROUND_JOBS: list[Callable[[AppContext], Coroutine[Any, Any, None]]] = [
    _housekeeping,
    # domain jobs
    rules_engine,
    retention_job,
    health_sampler,
    anonymous_refusals_job,
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        key = server_key(settings.secrets_dir, settings.secret_key)
        await asyncio.to_thread(migrate, settings.database_path, settings.backups_path)
        db = Database(
            settings.database_path,
            readers=settings.reader_pool_size,
            busy_timeout_ms=settings.busy_timeout_ms,
            synchronous=settings.db_synchronous,
        )
        await db.open()
        ctx = build_context(settings, db, key)
        app.state.context = ctx
        unclean = await asyncio.to_thread(
            shutdown_marker.claim, settings.state_dir, given_boot_id=settings.boot_id
        )
        tasks = [asyncio.create_task(job(ctx), name=job.__name__) for job in BACKGROUND_JOBS]
        if unclean is not None:
            tasks.append(
                asyncio.create_task(
                    shutdown_marker.report_unclean_stop(ctx, unclean), name="unclean_stop"
                )
            )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await ctx.usage.flush(settings.session_idle_minutes)
            await db.close()
            # only now is the stop clean: everything acknowledged is on disk
            shutdown_marker.release(settings.state_dir)

    app = FastAPI(
        title="Mission Control",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_error_handlers(app)
    # inner first: the disk guard's 507s pass through the edge (headers, request id, log)
    app.add_middleware(DiskGuardMiddleware, settings=settings)
    app.add_middleware(EdgeMiddleware, settings=settings)
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/api/openapi.json", tags=["meta"], include_in_schema=False)
    async def openapi_document(_: ReadAccess) -> JSONResponse:
        """Scope read. The OpenAPI description of this API."""
        schema: dict[str, Any] = get_openapi(
            title=app.title, version=app.version, routes=app.routes
        )
        return JSONResponse(schema)

    @app.get("/api/docs", tags=["meta"], include_in_schema=False)
    async def api_docs(_: ReadAccess) -> HTMLResponse:
        """Scope read. A plain list of every operation (no CDN, no script)."""
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        return HTMLResponse(render_operations(schema))

    return app
