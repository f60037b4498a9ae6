"""Public ``/healthz`` (ok or degraded, nothing else) and the detailed view (F5,
``app/health/details.py``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.access.dependencies import ReadAccess
from app.core.context import Ctx
from app.core.database import database_ok
from app.health.details import health_report

router = APIRouter(tags=["health"])


@router.get("/healthz", include_in_schema=True)
async def healthz(ctx: Ctx) -> JSONResponse:
    """Public. Only ``{"status": "ok"}`` (200) or ``{"status": "degraded"}`` (503)."""
    if await database_ok(ctx.db):
        return JSONResponse({"status": "ok"}, status_code=200)
    return JSONResponse({"status": "degraded"}, status_code=503)


@router.get("/api/health")
async def health_details(_: ReadAccess, ctx: Ctx) -> dict[str, Any]:
    """Scope read. Database, disk, memory, load, temperature, uptime, the running and
    previous release, and ``repairs``: each current problem with its plain-language
    ``cause`` and the ``fix`` (a command or a page)."""
    return await health_report(ctx)
