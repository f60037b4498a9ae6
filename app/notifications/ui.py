"""The notification channels page: each channel's name, service kind and
delivery state (breaker, last delivery, last test) and a "Send test" button.
The page only reads; "Send test" goes through the JSON API, which only queues
the test: the notifier sends it (docs/notifications.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.core.context import Ctx
from app.notifications import service
from app.ui.auth import UiSession
from app.ui.page_kit import ui_page

router = APIRouter(include_in_schema=False)


@router.get("/ui/notifications/channels", response_class=HTMLResponse)
async def channels_page(request: Request, principal: UiSession, ctx: Ctx) -> HTMLResponse:
    view = await service.channels_view(ctx)
    waiting = any(c.last_test is not None and c.last_test.state == "pending" for c in view.channels)
    return await ui_page(
        request,
        principal,
        ctx,
        "notify_channels.html",
        title="Notification channels",
        section="notifications",
        view=view,
        waiting=waiting,
    )
