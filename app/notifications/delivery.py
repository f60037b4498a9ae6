"""Delivery of notifications off the Pi, through apprise (docs/notifications.md).

Runs only in the notifier process (``missionctl notify run``); the API process
never imports this module. A notification sent off the Pi has one delivery per
channel (``notification_deliveries``), each with its own state (``pending``,
``sent``, ``failed``), attempts, next attempt and last error:

* each channel works through its own due deliveries, the channels side by side
  (a channel that hangs or is down does not hold back the others); one apprise
  call per delivery, in a thread (``asyncio.to_thread``), with apprise's own
  connect and read timeouts; a delivery is ``sent`` once and never sent again;
* a failure is retried with exponential backoff on that channel only, at most
  ``max_attempts`` times for that channel, then that delivery is ``failed``;
* a circuit breaker per channel stops attempts to it for a while after
  repeated failures (F13), so a dead endpoint is not hammered; a channel whose
  breaker is open is not even asked for its due deliveries; the breaker's
  state is written to ``notify_channels`` for the UI;
* the notification's ``webhook_state`` summarises its deliveries (pending,
  delivered, partial, failed);
* quiet hours defer every category but ``security``;
* "send test" requests from the UI are sent here and their outcome recorded;
* log lines and stored errors name the channel only, never its URL (it holds
  the secret topic, token or password).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiosqlite import Connection

from app.core.circuit import BreakerState, CircuitBreaker
from app.core.clock import iso, utcnow
from app.core.database import Database, Row
from app.events.types import Category
from app.notifications import store
from app.notifications.channels import Channel, quiet_asset, silence_libraries
from app.policies.model import NotificationPolicy, QuietHours
from app.policies.store import load_notification_policy

log = logging.getLogger("mission_control.notifications")

TEST_TITLE = "Mission Control: test notification"
TEST_BODY = "This channel works: Mission Control's alerts reach you here."
_STATUS = re.compile(r"error=(\d{3})")


def quiet_until(quiet: QuietHours | None, now: datetime) -> datetime | None:
    """When the current quiet period ends, or None outside quiet hours (UTC)."""
    if quiet is None or not quiet.contains(now.strftime("%H:%M")):
        return None
    hour, minute = (int(part) for part in quiet.end.split(":"))
    end = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if end <= now:
        end += timedelta(days=1)
    return end


def _deferred(row: Row, policy: NotificationPolicy, now: datetime) -> datetime | None:
    category = str(row["category"])
    if category == Category.SECURITY.value:
        return None  # never quieted
    if category not in {c.value for c in policy.quiet_categories}:
        return None
    return quiet_until(policy.quiet_hours, now)


class ApprisePort:
    """One apprise object per channel; ``send`` blocks (call it in a thread) and
    answers ``None`` when delivered, else a short reason that holds no URL."""

    TYPES = {"info": "info", "warning": "warning", "critical": "failure"}

    def __init__(self, channels: list[Channel]) -> None:
        import apprise

        self._objects: dict[str, Any] = {}
        for channel in channels:
            instance = apprise.Apprise(asset=quiet_asset())
            instance.add(channel.url)
            self._objects[channel.name] = instance

    def send(self, channel: str, title: str, body: str, severity: str) -> str | None:
        try:
            result = self._objects[channel].notify(
                body=body or title, title=title, notify_type=self.TYPES.get(severity, "info")
            )
        except Exception as exc:  # apprise catches its own; anything else is a failure
            return f"not delivered ({type(exc).__name__})"
        if result:
            return None
        # the warnings of this call only, from apprise's result (not its logger:
        # the channels send side by side, and one's reason must not become another's)
        text = "\n".join(
            str(entry.message)
            for service in getattr(result, "results", ())
            for entry in service.logs()
            if entry.level in ("WARNING", "ERROR", "CRITICAL")
        )
        status = _STATUS.search(text)
        if status:
            return f"the service answered HTTP {status.group(1)}"
        if "connection" in text.lower() or "timed out" in text.lower():
            return "the service could not be reached"
        return "not delivered (the service refused it or could not be reached)"


@dataclass
class DeliveryReport:
    """What one round did; ``delivered``, ``retried`` and ``failed`` count
    deliveries (a notification to two channels is two), ``deferred`` too."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    tests: int = 0
    skipped_open_circuit: bool = False


@dataclass
class Delivery:
    """The delivery job's state: the channels, one breaker each."""

    channels: list[Channel]
    max_attempts: int = 8
    base_delay_s: float = 30.0
    max_delay_s: float = 3600.0
    batch: int = 20
    failure_threshold: int = 5
    cool_down_s: float = 300.0
    port: ApprisePort | None = None
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)

    def __post_init__(self) -> None:
        silence_libraries()
        if self.port is None:
            self.port = ApprisePort(self.channels)
        for channel in self.channels:
            self.breakers.setdefault(
                channel.name,
                CircuitBreaker(
                    f"notify:{channel.name}",
                    failure_threshold=self.failure_threshold,
                    cool_down_s=self.cool_down_s,
                    trial_timeout_s=120.0,
                ),
            )

    def backoff_s(self, attempts_done: int) -> float:
        """Delay after the ``attempts_done``-th failed attempt: base, 2x base, 4x..."""
        return float(min(self.max_delay_s, self.base_delay_s * 2 ** max(0, attempts_done - 1)))

    async def announce(self, db: Database) -> None:
        """Write the channel names (never the URLs) for the API and the UI, and
        line the waiting deliveries up with them: a channel that left the file
        is given up, a new one gets what still waits; a notification that waits
        for no channel (none was ever configured for it) stays on the Pi
        (``none``)."""
        async with db.write() as conn:
            await store.set_channels(conn, [(c.name, c.service) for c in self.channels])
            await store.reconcile_channels(conn, [c.name for c in self.channels])

    async def _send(self, channel: Channel, title: str, body: str, severity: str) -> str | None:
        assert self.port is not None
        return await asyncio.to_thread(self.port.send, channel.name, title, body, severity)

    async def _record(self, conn: Connection, channel: Channel, error: str | None) -> None:
        breaker = self.breakers[channel.name]
        if error is None:
            breaker.record_success()
        else:
            breaker.record_failure()
            log.warning(
                "notification not delivered", extra={"channel": channel.name, "reason": error}
            )
        snap = breaker.snapshot()
        await store.record_channel(
            conn,
            channel.name,
            delivered=error is None,
            error=error,
            breaker_state=snap.state.value,
            consecutive_failures=snap.consecutive_failures,
            opened_at=snap.opened_at,
        )

    async def run_once(self, db: Database) -> DeliveryReport:
        """One round of everything: the tests, then every channel side by side
        (the notifier runs the channels in loops of their own, ``run_channel``)."""
        report = DeliveryReport()
        report.tests = await self.run_tests(db)
        # every channel's round ends before this one does, even when one fails: a
        # round still sending when the next starts could send a delivery twice
        outcomes = await asyncio.gather(
            *(self.run_channel(db, channel, report) for channel in self.channels),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return report

    async def run_channel(
        self,
        db: Database,
        channel: Channel,
        report: DeliveryReport | None = None,
        stop: asyncio.Event | None = None,
    ) -> DeliveryReport:
        """One channel's due deliveries, oldest first, while its breaker lets them
        (and until ``stop`` is set, between two deliveries)."""
        report = report if report is not None else DeliveryReport()
        breaker = self.breakers[channel.name]
        if breaker.state is BreakerState.OPEN:
            report.skipped_open_circuit = True
            return report  # its deliveries wait; they take no batch from the other channels
        now = utcnow()
        rows = await store.due_deliveries(db, channel.name, iso(now), self.batch)
        if not rows:
            return report
        async with db.read() as conn:
            policy, _ = await load_notification_policy(conn)
        for row in rows:
            if stop is not None and stop.is_set():
                break
            notification_id = int(row["notification_id"])
            until = _deferred(row, policy, now)
            if until is not None:
                async with db.write() as conn:
                    await store.delivery_defer(conn, notification_id, channel.name, iso(until))
                    await store.settle(conn, notification_id)
                report.deferred += 1
                continue
            if not breaker.allow():
                report.skipped_open_circuit = True
                break
            error = await self._send(
                channel, str(row["title"]), str(row["body"] or ""), str(row["severity"])
            )
            await self._outcome(
                db, channel, notification_id, int(row["attempts"]) + 1, error, report
            )
        return report

    async def _outcome(
        self,
        db: Database,
        channel: Channel,
        notification_id: int,
        attempts: int,
        error: str | None,
        report: DeliveryReport,
    ) -> None:
        async with db.write() as conn:
            await self._record(conn, channel, error)
            if error is None:
                await store.delivery_sent(conn, notification_id, channel.name)
                report.delivered += 1
            elif attempts >= self.max_attempts:
                await store.delivery_failed(conn, notification_id, channel.name, error)
                report.failed += 1
                log.warning(
                    "notification delivery given up",
                    extra={
                        "notification": notification_id,
                        "channel": channel.name,
                        "attempts": attempts,
                    },
                )
            else:
                next_at = iso(utcnow() + timedelta(seconds=self.backoff_s(attempts)))
                await store.delivery_retry(conn, notification_id, channel.name, next_at, error)
                report.retried += 1
            await store.settle(conn, notification_id)

    async def run_tests(self, db: Database) -> int:
        """Send the test notifications the UI asked for; record each outcome."""
        by_name = {c.name: c for c in self.channels}
        rows = await store.pending_tests(db, 10)
        for row in rows:
            channel = by_name.get(str(row["channel"]))
            if channel is None:
                error: str | None = "no channel of that name in the notifier's file"
            else:
                # an owner's explicit test passes an open breaker (it is a trial)
                error = await self._send(channel, TEST_TITLE, TEST_BODY, "info")
            async with db.write() as conn:
                if channel is not None:
                    await self._record(conn, channel, error)
                await store.finish_test(
                    conn, int(row["id"]), delivered=error is None, outcome=error or "delivered"
                )
        return len(rows)
