"""Rules of notifications: reading, marking read, the unread summary."""

from __future__ import annotations

from collections.abc import Sequence

from app.access.caller import Caller
from app.core.clock import parse_iso, utcnow
from app.core.context import AppContext
from app.core.database import Database, Row
from app.core.errors import ApiError
from app.events.transaction import transaction
from app.events.types import Category
from app.notifications import store
from app.notifications.schemas import (
    ChannelsView,
    ChannelTest,
    ChannelView,
    DeliveryView,
    NotificationSummary,
    NotificationView,
)


def delivery_view(row: Row) -> DeliveryView:
    return DeliveryView(
        channel=row["channel"],
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_at=row["next_at"],
        sent_at=row["sent_at"],
        last_error=row["last_error"],
    )


def notification_view(row: Row, deliveries: Sequence[Row] = ()) -> NotificationView:
    return NotificationView(
        id=row["id"],
        category=Category(row["category"]),
        severity=row["severity"],
        title=row["title"],
        body=row["body"],
        muted=bool(row["muted"]) and row["category"] != Category.SECURITY.value,
        read=row["read_at"] is not None,
        read_at=row["read_at"],
        webhook_state=row["webhook_state"],
        webhook_attempts=row["webhook_attempts"],
        deliveries=[delivery_view(d) for d in deliveries],
        created_at=row["created_at"],
        link=row["link"],
    )


async def notification_views(db: Database, rows: Sequence[Row]) -> list[NotificationView]:
    """The views of these notifications, each with its deliveries per channel."""
    deliveries = await store.deliveries_of(db, [int(r["id"]) for r in rows])
    return [notification_view(r, deliveries[int(r["id"])]) for r in rows]


async def get_notification(ctx: AppContext, notification_id: int) -> NotificationView:
    row = await store.notification_by_id(ctx.db, notification_id)
    if row is None:
        raise ApiError(404, "not_found", "no such notification")
    (view,) = await notification_views(ctx.db, [row])
    return view


async def mark_read(ctx: AppContext, notification_id: int, caller: Caller) -> NotificationView:
    """Mark one notification read; marking a read one again changes nothing."""
    async with transaction(ctx, caller.actor, caller.client) as tx:
        row = await store.notification_tx(tx.conn, notification_id)
        if row is None:
            raise ApiError(404, "not_found", "no such notification")
        if await store.mark_read(tx.conn, notification_id):
            await tx.audit(
                "notification.read",
                f"notification:{notification_id}",
                {"category": row["category"]},
            )
    return await get_notification(ctx, notification_id)


async def mark_all_read(ctx: AppContext, category: Category | None, caller: Caller) -> int:
    async with transaction(ctx, caller.actor, caller.client) as tx:
        count = await store.mark_all_read(tx.conn, category.value if category else None)
        if count:
            await tx.audit(
                "notification.read_all",
                "notifications",
                {"category": category.value if category else None, "count": count},
            )
    return count


async def summary(ctx: AppContext) -> NotificationSummary:
    counts = await store.unread_by_category(ctx.db)
    unread = {category.value: counts.get(category.value, 0) for category in Category}
    return NotificationSummary(
        unread=unread,
        total_unread=sum(unread.values()),
        muted_unread=await store.muted_unread(ctx.db),
    )


# channels of the notifier (names and state only) ------------------------------------
NOTIFIER_STALE_S = 60
NO_CHANNEL = "no channel: alerts stay on the Pi"
NO_CHANNEL_FIX = (
    "add a channel (an apprise URL, e.g. your phone's ntfy topic) to the notifier's file:"
    " the provisioning variable app_notify_channels, or the notifier's notify.toml"
    " (docs/notifications.md), then 'sudo systemctl restart mission-control-notify'"
)
NOT_RUNNING = "the notifier is not running: alerts stay on the Pi"
NOT_RUNNING_FIX = (
    "'sudo systemctl status mission-control-notify'; in development 'make run' starts it"
)


def _test_view(row: Row | None) -> ChannelTest | None:
    return ChannelTest(**dict(row)) if row is not None else None


async def notifier_running(db: Database) -> tuple[str | None, bool]:
    """The notifier's last heartbeat and whether it is recent."""
    beat = await store.heartbeat(db)
    if beat is None:
        return None, False
    seen = str(beat["seen_at"])
    return seen, (utcnow() - parse_iso(seen)).total_seconds() < NOTIFIER_STALE_S


async def channels_view(ctx: AppContext) -> ChannelsView:
    rows = await store.list_channels(ctx.db)
    tests = await store.last_tests(ctx.db)
    seen, running = await notifier_running(ctx.db)
    warning = None
    if not rows:
        warning = f"{NO_CHANNEL}. Fix: {NO_CHANNEL_FIX}"
    elif not running:
        warning = f"{NOT_RUNNING}. Fix: {NOT_RUNNING_FIX}"
    return ChannelsView(
        channels=[
            ChannelView(
                name=r["name"],
                service=r["service"],
                breaker_state=r["breaker_state"],
                consecutive_failures=r["consecutive_failures"],
                breaker_opened_at=r["breaker_opened_at"],
                last_delivered_at=r["last_delivered_at"],
                last_failed_at=r["last_failed_at"],
                last_error=r["last_error"],
                last_test=_test_view(tests.get(str(r["name"]))),
            )
            for r in rows
        ],
        notifier_seen_at=seen,
        notifier_running=running,
        warning=warning,
    )


async def request_test(ctx: AppContext, name: str, caller: Caller) -> ChannelTest:
    """Queue a test notification; the notifier sends it (the API sends nothing)."""
    names = {str(r["name"]) for r in await store.list_channels(ctx.db)}
    if name not in names:
        raise ApiError(
            404,
            "not_found",
            f"no channel named {name!r}; the configured ones are listed at"
            " GET /api/notifications/channels",
        )
    async with transaction(ctx, caller.actor, caller.client) as tx:
        if await store.pending_test(tx.conn, name):
            raise ApiError(
                409, "test_pending", f"a test of {name!r} is already waiting for the notifier"
            )
        test_id = await store.insert_test(tx.conn, name, caller.actor)
        await tx.audit("notification.test_requested", f"channel:{name}", {"test": test_id})
    row = await store.test_by_id(ctx.db, test_id)
    assert row is not None
    return ChannelTest(**dict(row))


async def get_test(ctx: AppContext, test_id: int) -> ChannelTest:
    row = await store.test_by_id(ctx.db, test_id)
    if row is None:
        raise ApiError(404, "not_found", "no such test notification")
    return ChannelTest(**dict(row))
