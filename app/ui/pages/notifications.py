"""The notifications pages: the list (unread or all, by category, each with its
delivery to every channel: sent, waiting or not delivered and why), the policy
editor, and the channels page: each channel's name, service kind and delivery
state (breaker, last delivery, last test) and a "Send test" button. "Send test"
goes through the JSON API, which only queues the test: the notifier sends it
(docs/notifications.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.core.context import Ctx
from app.core.pagination import Pagination
from app.events.types import Category
from app.notifications import service as notifications_service
from app.notifications import store as notifications_store
from app.policies import service as policies_service
from app.policies.model import SECURITY_LOCK
from app.ui.auth import UiSession
from app.ui.page_kit import pager, ui_page

router = APIRouter(include_in_schema=False)


@router.get("/ui/notifications", response_class=HTMLResponse)
async def notifications_page(
    request: Request,
    principal: UiSession,
    ctx: Ctx,
    page_params: Pagination,
    show: Annotated[str | None, Query(pattern=r"^(unread|all)$")] = None,
    category: Annotated[Category | None, Query()] = None,
) -> HTMLResponse:
    unread = None if show == "all" else True
    rows, total = await notifications_store.list_notifications(
        ctx.db,
        page_params,
        unread=unread,
        category=category.value if category else None,
        include_muted=True,
    )
    return await ui_page(
        request,
        principal,
        ctx,
        "notifications.html",
        title="Notifications",
        section="notifications",
        notifications=await notifications_service.notification_views(ctx.db, rows),
        summary=await notifications_service.summary(ctx),
        show=show or "unread",
        category=category.value if category else "",
        categories=[c.value for c in Category],
        pager=pager(request, (total, page_params)),
    )


@router.get("/ui/notifications/policy", response_class=HTMLResponse)
async def policy_page(request: Request, principal: UiSession, ctx: Ctx) -> HTMLResponse:
    view = await policies_service.get_notification_policy(ctx)
    return await ui_page(
        request,
        principal,
        ctx,
        "policy.html",
        title="Notification policy",
        section="notifications",
        view=view,
        categories=[c.value for c in Category],
        lock=SECURITY_LOCK,
    )


@router.get("/ui/notifications/channels", response_class=HTMLResponse)
async def channels_page(request: Request, principal: UiSession, ctx: Ctx) -> HTMLResponse:
    view = await notifications_service.channels_view(ctx)
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
