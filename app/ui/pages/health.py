"""The health page: the detailed report (``app/health/details.py``, the same as
``GET /api/health``) and four charts of the last 24 hours.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from app.core.clock import iso, utcnow
from app.core.context import AppContext, Ctx
from app.health.charts import health_charts
from app.health.details import health_report
from app.health.samples import samples_between
from app.ui.auth import UiSession
from app.ui.page_kit import ui_page

router = APIRouter(include_in_schema=False)

CHART_HOURS = 24


async def health_chart_views(ctx: AppContext) -> list[dict[str, Any]]:
    """The four 24-hour charts (server-side SVG, app/health/charts.py) of stored samples."""
    end = utcnow()
    start = end - timedelta(hours=CHART_HOURS)
    samples, _ = await samples_between(ctx.db, iso(start), iso(end))
    charts = health_charts(
        samples, start=start, end=end, interval_s=ctx.settings.health_sample_interval_s
    )
    # every text in the SVG is escaped by app/health/charts.py; it has no style attribute
    return [{"chart": c, "svg": Markup(c.svg)} for c in charts]  # noqa: S704


@router.get("/ui/health", response_class=HTMLResponse)
async def health_page(request: Request, principal: UiSession, ctx: Ctx) -> HTMLResponse:
    return await ui_page(
        request,
        principal,
        ctx,
        "health.html",
        title="Health",
        section="health",
        health=await health_report(ctx),
        charts=await health_chart_views(ctx),
        chart_hours=CHART_HOURS,
        sample_interval_s=ctx.settings.health_sample_interval_s,
        sample_keep_days=ctx.settings.health_sample_retention_days,
    )
