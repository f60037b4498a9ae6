"""Delivery of notifications off the Pi, through apprise (docs/notifications.md).

Runs only in the notifier process (``missionctl notify run``); the API process
never imports this module. It sends notifications whose ``webhook_state`` is
``pending`` to every configured channel:

* one apprise call per channel, in a thread (``asyncio.to_thread``), with
  apprise's own connect and read timeouts; a channel that has a notification
  is recorded in ``delivered_to`` and is not sent it again on a retry;
* a failure is retried with exponential backoff (``webhook_attempts``,
  ``webhook_next_at``), at most ``max_attempts`` times, then ``failed``;
* a circuit breaker per channel stops attempts to it for a while after
  repeated failures (F13), so a dead endpoint is not hammered; its state is
  written to ``notify_channels`` for the UI;
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

from app.core.circuit import CircuitBreaker
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

        self._apprise = apprise
        self._objects: dict[str, Any] = {}
        for channel in channels:
            instance = apprise.Apprise(asset=quiet_asset())
            instance.add(channel.url)
            self._objects[channel.name] = instance

    def send(self, channel: str, title: str, body: str, severity: str) -> str | None:
        capture = self._apprise.LogCapture(level=logging.WARNING)  # type: ignore[no-untyped-call]
        try:
            with capture as output:
                ok = self._objects[channel].notify(
                    body=body or title, title=title, notify_type=self.TYPES.get(severity, "info")
                )
                text = output.getvalue()
        except Exception as exc:  # apprise catches its own; anything else is a failure
            return f"not delivered ({type(exc).__name__})"
        if ok:
            return None
        status = _STATUS.search(text)
        if status:
            return f"the service answered HTTP {status.group(1)}"
        if "connection" in text.lower() or "timed out" in text.lower():
            return "the service could not be reached"
        return "not delivered (the service refused it or could not be reached)"


@dataclass
class DeliveryReport:
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
        """Write the channel names (never the URLs) for the API and the UI."""
        async with db.write() as conn:
            await store.set_channels(conn, [(c.name, c.service) for c in self.channels])
            if not self.channels:
                # nothing can send them: they stay on the Pi, and say so
                await conn.execute(
                    "UPDATE notifications SET webhook_state = 'none', webhook_next_at = NULL"
                    " WHERE webhook_state = 'pending'"
                )

    async def _send(self, channel: Channel, title: str, body: str, severity: str) -> str | None:
        assert self.port is not None
        return await asyncio.to_thread(self.port.send, channel.name, title, body, severity)

    async def _record(self, db: Database, channel: Channel, error: str | None) -> None:
        breaker = self.breakers[channel.name]
        if error is None:
            breaker.record_success()
        else:
            breaker.record_failure()
            log.warning(
                "notification not delivered", extra={"channel": channel.name, "reason": error}
            )
        snap = breaker.snapshot()
        async with db.write() as conn:
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
        report = DeliveryReport()
        report.tests = await self.run_tests(db)
        if not self.channels:
            return report
        now = utcnow()
        rows = await store.due_webhooks(db, iso(now), self.batch)
        if not rows:
            return report
        async with db.read() as conn:
            policy, _ = await load_notification_policy(conn)
        for row in rows:
            until = _deferred(row, policy, now)
            if until is not None:
                async with db.write() as conn:
                    await store.webhook_defer(conn, int(row["id"]), iso(until))
                report.deferred += 1
                continue
            await self._deliver(db, row, report)
        return report

    async def _deliver(self, db: Database, row: Row, report: DeliveryReport) -> None:
        notification_id = int(row["id"])
        done = set(filter(None, str(row["delivered_to"]).split(",")))
        remaining = [c for c in self.channels if c.name not in done]
        allowed = [c for c in remaining if self.breakers[c.name].allow()]
        if remaining and not allowed:
            report.skipped_open_circuit = True
            return
        failed = False
        for channel in allowed:
            error = await self._send(
                channel, str(row["title"]), str(row["body"] or ""), str(row["severity"])
            )
            await self._record(db, channel, error)
            if error is None:
                async with db.write() as conn:
                    await store.add_delivered_to(conn, notification_id, channel.name)
            else:
                failed = True
        if not failed:
            if len(allowed) == len(remaining):
                async with db.write() as conn:
                    await store.webhook_delivered(conn, notification_id)
                report.delivered += 1
            else:
                report.skipped_open_circuit = True  # the others wait for their breaker
            return
        attempts = int(row["webhook_attempts"]) + 1
        async with db.write() as conn:
            if attempts >= self.max_attempts:
                await store.webhook_failed(conn, notification_id, attempted=True)
                report.failed += 1
                log.warning(
                    "notification delivery given up",
                    extra={"notification": notification_id, "attempts": attempts},
                )
                return
            next_at = iso(utcnow() + timedelta(seconds=self.backoff_s(attempts)))
            await store.webhook_retry(conn, notification_id, next_at)
            report.retried += 1

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
                await self._record(db, channel, error)
            async with db.write() as conn:
                await store.finish_test(
                    conn, int(row["id"]), delivered=error is None, outcome=error or "delivered"
                )
        return len(rows)
