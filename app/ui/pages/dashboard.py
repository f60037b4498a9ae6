"""The dashboard: health, spend today, runs in progress, escalations to handle,
unread notifications, agents today and the live event feed.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.core.clock import utcnow
from app.core.context import Ctx
from app.core.pagination import PageParams
from app.escalations import service as escalations_service
from app.events.stream import list_events
from app.health.details import health_report
from app.notifications import service as notifications_service
from app.notifications import store as notifications_store
from app.tasks import store as tasks_store
from app.tasks.waiting import waiting_items
from app.ui import store
from app.ui.auth import UiSession
from app.ui.page_kit import event_view, ui_page

router = APIRouter(include_in_schema=False)

DASHBOARD_ROWS = 10


FEED_ROWS = 20


@router.get("/ui/", response_class=HTMLResponse)
async def dashboard(request: Request, principal: UiSession, ctx: Ctx) -> HTMLResponse:
    now = utcnow()
    agents, agent_total = await store.agents_today(ctx.db, PageParams(limit=20, offset=0), now)
    runs, run_total = await store.active_runs(ctx.db, PageParams(limit=DASHBOARD_ROWS, offset=0))
    escalations, escalation_total = await store.unresolved_escalations(
        ctx.db, PageParams(limit=DASHBOARD_ROWS, offset=0)
    )
    notifications, unread_total = await notifications_store.list_notifications(
        ctx.db, PageParams(limit=DASHBOARD_ROWS, offset=0), unread=True
    )
    tokens, cost, runs_today = await store.spend_today(ctx.db, now)
    events, _ = await list_events(ctx.db, principal.scope, PageParams(limit=FEED_ROWS, offset=0))
    health = await health_report(ctx)
    held, held_total = await tasks_store.held_for_approval(ctx.db, DASHBOARD_ROWS)
    return await ui_page(
        request,
        principal,
        ctx,
        "dashboard.html",
        title="Dashboard",
        section="dashboard",
        agents=agents,
        agent_total=agent_total,
        runs=runs,
        run_total=run_total,
        escalations=[escalations_service.escalation_view(r) for r in escalations],
        escalation_total=escalation_total,
        notifications=[notifications_service.notification_view(r) for r in notifications],
        unread_total=unread_total,
        spend={"tokens": tokens, "cost_usd": cost, "runs": runs_today},
        task_counts=await store.task_counts(ctx.db),
        waiting_for_you=await waiting_items(ctx.db),
        held_tasks=held,
        held_total=held_total,
        events=[event_view(r) for r in events],
        last_event_id=int(events[0]["id"]) if events else 0,
        health=health,
    )
