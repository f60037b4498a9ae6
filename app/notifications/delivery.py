"""Outbound webhook delivery of notifications (ntfy-compatible).

A background job of the API process sends notifications whose
``webhook_state`` is ``pending`` to ``notify_webhook_url``:

* only if the URL's host is in ``notify_webhook_allowed_hosts`` and the scheme
  is https (plain http only to a loopback host); otherwise the pending rows are
  marked ``failed``, nothing is contacted, and a security alert is raised once;
* a POST of the body with the headers ``Title``, ``Priority`` and ``Tags``,
  through the stdlib in a thread (``asyncio.to_thread``), with a short timeout,
  no redirects followed, the answer read only up to a small bound;
* a failure is retried with exponential backoff (``webhook_attempts``,
  ``webhook_next_at``), at most ``max_attempts`` times, then ``failed``;
* a circuit breaker stops all attempts for a while after repeated failures
  (F13), so a dead endpoint is not hammered;
* quiet hours defer every category but ``security``;
* no request ever waits for any of this, and log lines name the host only,
  never the URL (its path or query may hold a secret topic or token).
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import ipaddress
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import unquote, urlsplit

from app.core.clock import iso, utcnow
from app.core.context import AppContext
from app.core.database import Row
from app.events.transaction import transaction
from app.notifications import store
from app.policies.model import Category, NotificationPolicy, QuietHours
from app.policies.store import load_notification_policy
from app.runner.circuit import CircuitBreaker

log = logging.getLogger("mission_control.notifications")

ACTOR = "system:webhook"
POLL_S = 5.0
MIN_SPACING_S = 0.5
MAX_RESPONSE_BYTES = 64 * 1024
PRIORITY = {"info": "3", "warning": "4", "critical": "5"}


class WebhookRefused(Exception):
    """The configured URL may not be contacted; ``reason`` is safe to log."""

    def __init__(self, reason: str, host: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.host = host


@dataclass(frozen=True)
class WebhookTarget:
    scheme: str
    host: str
    port: int | None
    path: str
    authorization: str | None = field(default=None, repr=False)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_target(url: str, allowed_hosts: list[str]) -> WebhookTarget:
    """The URL as a target, or ``WebhookRefused`` when it is not allowed."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        raise WebhookRefused("the webhook URL cannot be parsed", "unknown") from None
    if not host:
        raise WebhookRefused("the webhook URL has no host", "unknown")
    allowed = {entry.strip().lower() for entry in allowed_hosts if entry.strip()}
    if host not in allowed:
        raise WebhookRefused("the webhook host is not in notify_webhook_allowed_hosts", host)
    if parts.scheme == "http" and not _is_loopback(host):
        raise WebhookRefused("plain http is allowed only to a loopback host; use https", host)
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused("the webhook URL must use https", host)
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode()
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return WebhookTarget(parts.scheme, host, port, path, authorization)


def header_text(text: str, limit: int = 200) -> str:
    """A header value: no control characters; non-ASCII as RFC 2047 (ntfy reads it)."""
    clean = "".join(ch if ch.isprintable() else " " for ch in text)[:limit].strip()
    if clean.isascii():
        return clean
    return "=?UTF-8?B?" + base64.b64encode(clean.encode()).decode() + "?="


def post(target: WebhookTarget, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """One blocking POST (run it in a thread); the HTTP status. No redirects."""
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        connection = http.client.HTTPSConnection(
            target.host, target.port, timeout=timeout_s, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout_s)
    all_headers = {"Content-Type": "text/plain; charset=utf-8", **headers}
    if target.authorization:
        all_headers["Authorization"] = target.authorization
    try:
        connection.request("POST", target.path, body=body, headers=all_headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return int(response.status)
    finally:
        connection.close()


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


@dataclass
class DeliveryReport:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    refused: int = 0
    skipped_open_circuit: bool = False


Sender = Callable[[WebhookTarget, bytes, dict[str, str], float], int]


@dataclass
class WebhookDelivery:
    """State of the delivery job: its circuit breaker and the alerts it raised."""

    max_attempts: int = 8
    base_delay_s: float = 30.0
    max_delay_s: float = 3600.0
    timeout_s: float = 5.0
    batch: int = 20
    sender: Sender = post
    breaker: CircuitBreaker = field(
        default_factory=lambda: CircuitBreaker("webhook", failure_threshold=5, cool_down_s=300.0)
    )
    _alerted: set[str] = field(default_factory=set)

    def backoff_s(self, attempts_done: int) -> float:
        """Delay after the ``attempts_done``-th failed attempt: base, 2x base, 4x..."""
        return float(min(self.max_delay_s, self.base_delay_s * 2 ** max(0, attempts_done - 1)))

    async def run_once(self, ctx: AppContext) -> DeliveryReport:
        report = DeliveryReport()
        url = ctx.settings.notify_webhook_url
        if url is None:
            return report
        now = utcnow()
        rows = await store.due_webhooks(ctx.db, iso(now), self.batch)
        if not rows:
            return report
        try:
            target = parse_target(url, ctx.settings.notify_webhook_allowed_hosts)
        except WebhookRefused as refused:
            await self._refuse(ctx, rows, refused)
            report.refused = len(rows)
            return report
        async with ctx.db.read() as conn:
            policy, _ = await load_notification_policy(conn)
        for row in rows:
            until = _deferred(row, policy, now)
            if until is not None:
                async with ctx.db.write() as conn:
                    await store.webhook_defer(conn, int(row["id"]), iso(until))
                report.deferred += 1
                continue
            if not self.breaker.allow():
                report.skipped_open_circuit = True
                break
            await self._send(ctx, target, row, report)
        return report

    async def _send(
        self, ctx: AppContext, target: WebhookTarget, row: Row, report: DeliveryReport
    ) -> None:
        notification_id = int(row["id"])
        body = (row["body"] or row["title"]).encode()
        headers = {
            "Title": header_text(str(row["title"])),
            "Priority": PRIORITY.get(str(row["severity"]), "3"),
            "Tags": header_text(f"{row['category']},{row['severity']}", 64),
        }
        status: int | None = None
        try:
            status = await asyncio.to_thread(self.sender, target, body, headers, self.timeout_s)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            log.warning(
                "webhook delivery failed",
                extra={
                    "host": target.host,
                    "notification": notification_id,
                    "error": type(exc).__name__,
                },
            )
        attempts = int(row["webhook_attempts"]) + 1
        async with ctx.db.write() as conn:
            if status is not None and 200 <= status < 300:
                self.breaker.record_success()
                await store.webhook_delivered(conn, notification_id)
                report.delivered += 1
                return
            self.breaker.record_failure()
            if status is not None:
                log.warning(
                    "webhook delivery refused by the endpoint",
                    extra={"host": target.host, "notification": notification_id, "status": status},
                )
            if attempts >= self.max_attempts:
                await store.webhook_failed(conn, notification_id, attempted=True)
                report.failed += 1
                log.warning(
                    "webhook delivery given up",
                    extra={
                        "host": target.host,
                        "notification": notification_id,
                        "attempts": attempts,
                    },
                )
                return
            next_at = iso(utcnow() + timedelta(seconds=self.backoff_s(attempts)))
            await store.webhook_retry(conn, notification_id, next_at)
            report.retried += 1

    async def _refuse(self, ctx: AppContext, rows: list[Row], refused: WebhookRefused) -> None:
        key = f"{refused.host}|{refused.reason}"
        first = key not in self._alerted
        self._alerted.add(key)
        log.warning("webhook URL refused", extra={"host": refused.host, "reason": refused.reason})
        async with transaction(ctx, ACTOR) as tx:
            for row in rows:
                await store.webhook_failed(tx.conn, int(row["id"]), attempted=False)
            await tx.audit(
                "notification.webhook_refused",
                f"host:{refused.host}",
                {"reason": refused.reason, "notifications": len(rows)},
                outcome="refused",
            )
            if first:
                await tx.security_alert(
                    "Notification webhook refused",
                    f"Notifications were not sent to {refused.host}: {refused.reason}.",
                )


async def webhook_job(ctx: AppContext) -> None:
    """Background job: deliver pending notifications, forever."""
    delivery = WebhookDelivery()
    while True:
        await ctx.bus.wait(POLL_S)
        if ctx.settings.notify_webhook_url is None:
            continue
        try:
            await delivery.run_once(ctx)
        except Exception:
            log.exception("webhook delivery job failed")
        await asyncio.sleep(MIN_SPACING_S)
