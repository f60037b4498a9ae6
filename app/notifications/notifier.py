"""``missionctl notify run``: the notifier process (docs/notifications.md).

The only process that sends notifications off the Pi. It reads the channels
file (root-owned, readable through the notifier's group only), writes the
channel names for the UI, then polls the database for "send test" requests and,
in one loop per channel, for that channel's due deliveries, and sends them
through apprise (a channel that hangs or is down holds back no other). Under systemd it is
``Type=notify`` with a watchdog that pings only while the database answers; its
unit may reach only the channels' hosts and the resolver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from app.core.clock import now_iso
from app.core.database import Database, database_ok
from app.core.migrations import MigrationError, migrate
from app.core.settings import Settings
from app.core.systemd import Notifier, watchdog_interval_s, watchdog_loop
from app.notifications import store
from app.notifications.channels import Channel, ChannelsError, load_channels
from app.notifications.delivery import Delivery

log = logging.getLogger("mission_control.notifications")

#: how long a stop waits for the channels' sends under way (systemd's stop timeout is longer)
STOP_GRACE_S = 10.0


def build_delivery(settings: Settings) -> Delivery:
    """The channels file read and checked; ``ChannelsError`` when it is unusable."""
    return Delivery(
        load_channels(settings.notify_channels_path),
        max_attempts=settings.notify_max_attempts,
        base_delay_s=settings.notify_retry_base_s,
        failure_threshold=settings.notify_breaker_failures,
        cool_down_s=settings.notify_breaker_cool_down_s,
    )


async def serve(settings: Settings, delivery: Delivery, stop: asyncio.Event) -> None:
    migrate(settings.database_path, settings.backups_path)
    db = Database(settings.database_path, readers=1, busy_timeout_ms=settings.busy_timeout_ms)
    await db.open()
    notifier = Notifier()
    helpers: list[asyncio.Task[None]] = []
    channels: list[asyncio.Task[None]] = []
    try:
        await delivery.announce(db)
        started = now_iso()
        interval = watchdog_interval_s()
        if interval:

            async def healthy() -> bool:
                return await database_ok(db, timeout_s=interval / 2)

            helpers.append(asyncio.create_task(watchdog_loop(notifier, interval, healthy)))
        names = ", ".join(c.name for c in delivery.channels) or "none"
        notifier.ready(f"notifier: channels {names}")
        log.info("notifier started", extra={"channels": names})
        # one loop per channel: a channel that hangs or fails holds back no other
        channels = [
            asyncio.create_task(_channel_loop(db, delivery, channel, stop, settings.notify_poll_s))
            for channel in delivery.channels
        ]
        while not stop.is_set():
            try:
                async with db.write() as conn:
                    await store.beat(conn, os.getpid(), started, len(delivery.channels))
                await delivery.run_tests(db)
            except Exception:
                log.exception("notifier loop error; backing off")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.notify_poll_s)
        if channels:
            # a send under way is let finish and recorded (not sent again at the next start)
            await asyncio.wait(channels, timeout=STOP_GRACE_S)
    finally:
        notifier.stopping()
        for helper in [*helpers, *channels]:
            helper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await helper
        await db.close()


async def _channel_loop(
    db: Database, delivery: Delivery, channel: Channel, stop: asyncio.Event, poll_s: float
) -> None:
    while not stop.is_set():
        try:
            await delivery.run_channel(db, channel, stop=stop)
        except Exception:
            log.exception("notifier loop error; backing off", extra={"channel": channel.name})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_s)


def run_notifier(settings: Settings) -> int:
    """0 on a clean stop (SIGTERM), 2 when the channels file or database is unusable."""
    from app.core.serve import make_non_dumpable

    make_non_dumpable()  # the channels' secrets are in this process's memory
    try:
        delivery = build_delivery(settings)
    except ChannelsError as exc:
        print(f"missionctl notify run: {exc}", file=sys.stderr)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, delivery, stop)

    try:
        asyncio.run(main())
    except MigrationError as exc:
        print(f"missionctl notify run: {exc}", file=sys.stderr)
        return 2
    return 0
