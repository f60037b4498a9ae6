"""The notifications domain's sink for the write transaction: a notification is
stored as the notification policy says (muted, queued for the notifier, quiet
hours) and announced on the live feed, in the caller's transaction."""

from __future__ import annotations

from app.core.clock import utcnow
from app.events.transaction import Tx
from app.events.types import Category, EventType, Severity
from app.notifications.store import any_channel, insert_notification
from app.policies.store import load_notification_policy


async def record_notification(
    tx: Tx, category: Category, severity: Severity, title: str, body: str, link: str | None
) -> int:
    policy, _ = await load_notification_policy(tx.conn)
    muted = policy.is_muted(category)
    # queued for the notifier only while it has a channel (the notifier writes them)
    webhook = not muted and category in policy.webhook_categories and await any_channel(tx.conn)
    notification_id = await insert_notification(
        tx.conn,
        category=category,
        severity=severity,
        title=title,
        body=body,
        muted=muted,
        webhook=webhook,
        link=link,
    )
    quiet = (
        policy.quiet_hours is not None
        and category in policy.quiet_categories
        and policy.quiet_hours.contains(utcnow().strftime("%H:%M"))
    )
    await tx.emit(
        EventType.NOTIFICATION_CREATED,
        "notification",
        notification_id,
        {
            "category": category.value,
            "severity": severity.value,
            "title": title[:200],
            "muted": muted,
            "quiet": quiet,
        },
    )
    return notification_id
