"""HTTP endpoints of notifications: list, mark read, the unread summary."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.access.caller import OperateCaller
from app.access.dependencies import ReadAccess
from app.core.context import Ctx
from app.core.pagination import Page, Pagination
from app.events.types import Category
from app.notifications import service, store
from app.notifications.schemas import (
    ChannelsView,
    ChannelTest,
    NotificationSummary,
    NotificationView,
    ReadAll,
    ReadAllResult,
)

router = APIRouter(prefix="/api/notifications", tags=["notifications"])

NotificationId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("", response_model=Page[NotificationView])
async def list_notifications(
    _: ReadAccess,
    page: Pagination,
    ctx: Ctx,
    unread: Annotated[bool | None, Query()] = None,
    category: Annotated[Category | None, Query()] = None,
    include_muted: Annotated[bool, Query()] = False,
) -> Page[NotificationView]:
    """Scope read. Newest first; muted ones only with ``include_muted=true``
    (security notifications are never muted)."""
    rows, total = await store.list_notifications(
        ctx.db,
        page,
        unread=unread,
        category=category.value if category else None,
        include_muted=include_muted,
    )
    views = await service.notification_views(ctx.db, rows)
    return Page[NotificationView].build(views, total, page)


@router.get("/summary", response_model=NotificationSummary)
async def notification_summary(_: ReadAccess, ctx: Ctx) -> NotificationSummary:
    """Scope read. Unread counts per category (muted ones counted apart)."""
    return await service.summary(ctx)


@router.post("/read-all", response_model=ReadAllResult)
async def read_all(caller: OperateCaller, ctx: Ctx, body: ReadAll | None = None) -> ReadAllResult:
    """Scope operate. Mark every unread notification (or one category) read."""
    category = body.category if body else None
    count = await service.mark_all_read(ctx, category, caller)
    return ReadAllResult(marked_read=count)


ChannelName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
TestId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("/channels", response_model=ChannelsView)
async def list_channels(_: ReadAccess, ctx: Ctx) -> ChannelsView:
    """Scope read. The notifier's channels: names, service kind and delivery state
    (breaker, last delivery, last test), never a URL; ``warning`` when alerts
    cannot leave the Pi."""
    return await service.channels_view(ctx)


@router.post("/channels/{name}/test", response_model=ChannelTest, status_code=202)
async def send_test(name: ChannelName, caller: OperateCaller, ctx: Ctx) -> ChannelTest:
    """Scope operate. Queue a test notification to one channel; the notifier sends
    it and records the outcome (poll ``GET /api/notifications/tests/{id}``)."""
    return await service.request_test(ctx, name, caller)


@router.get("/tests/{test_id}", response_model=ChannelTest)
async def get_test(test_id: TestId, _: ReadAccess, ctx: Ctx) -> ChannelTest:
    """Scope read. A test notification's state: pending, delivered or failed."""
    return await service.get_test(ctx, test_id)


@router.get("/{notification_id}", response_model=NotificationView)
async def get_notification(
    notification_id: NotificationId, _: ReadAccess, ctx: Ctx
) -> NotificationView:
    """Scope read."""
    return await service.get_notification(ctx, notification_id)


@router.post("/{notification_id}/read", response_model=NotificationView)
async def read_notification(
    notification_id: NotificationId, caller: OperateCaller, ctx: Ctx
) -> NotificationView:
    """Scope operate. Mark one notification read (idempotent)."""
    return await service.mark_read(ctx, notification_id, caller)
