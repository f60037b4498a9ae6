"""Rules of notifications: reading, marking read, the unread summary."""

from __future__ import annotations

from app.core.context import AppContext
from app.core.database import Row
from app.core.errors import ApiError
from app.events.transaction import transaction
from app.notifications import store
from app.notifications.schemas import NotificationSummary, NotificationView
from app.policies.model import Category
from app.security.principal import Principal


def notification_view(row: Row) -> NotificationView:
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
        created_at=row["created_at"],
    )


async def get_notification(ctx: AppContext, notification_id: int) -> NotificationView:
    row = await store.notification_by_id(ctx.db, notification_id)
    if row is None:
        raise ApiError(404, "not_found", "no such notification")
    return notification_view(row)


async def mark_read(
    ctx: AppContext, notification_id: int, principal: Principal, client: str
) -> NotificationView:
    """Mark one notification read; marking a read one again changes nothing."""
    async with transaction(ctx, principal.actor, client) as tx:
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


async def mark_all_read(
    ctx: AppContext, category: Category | None, principal: Principal, client: str
) -> int:
    async with transaction(ctx, principal.actor, client) as tx:
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
