"""The notifier in ``/api/health`` repairs: a warning with the fix when alerts
cannot leave the Pi (no channel, or the notifier not running)."""

from __future__ import annotations

from app.core.database import Database
from app.core.findings import Finding
from app.notifications import service, store


async def notify_findings(db: Database) -> list[Finding]:
    if not await store.list_channels(db):
        return [
            Finding(
                "notify_channels",
                "warning",
                service.NO_CHANNEL,
                "No notification channel is configured: security alerts and failures are"
                " shown in the app only, and nobody hears of them away from it.",
                service.NO_CHANNEL_FIX,
            )
        ]
    _, running = await service.notifier_running(db)
    if not running:
        return [
            Finding(
                "notify_channels",
                "warning",
                service.NOT_RUNNING,
                "Channels are configured but the notifier has not reported for a minute:"
                " alerts wait on the Pi.",
                service.NOT_RUNNING_FIX,
            )
        ]
    return []
