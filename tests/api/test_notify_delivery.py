"""Delivery off the Pi through apprise, against a real receiver on loopback and a
real database: once per channel, retries with backoff, a breaker per channel
shown by the API and the UI, quiet hours, "send test", and no URL anywhere."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.clock import iso, parse_iso, utcnow
from app.core.context import AppContext
from app.events.transaction import transaction
from app.events.types import Category, Severity
from app.notifications.channels import load_channels
from app.notifications.delivery import Delivery
from app.policies.model import NotificationPolicy, QuietHours
from app.policies.store import save_notification_policy
from tests.support.api import login
from tests.support.receiver import SECRET_PATH, Receiver


@pytest.fixture
def receiver() -> Any:
    server = Receiver()
    try:
        yield server
    finally:
        server.stop()


def channels_file(tmp_path: Path, *channels: tuple[str, str]) -> Path:
    path = tmp_path / "notify.toml"
    path.write_text("".join(f'[[channel]]\nname = "{n}"\nurl = "{u}"\n' for n, u in channels))
    path.chmod(0o600)
    return path


async def delivery_for(
    ctx: AppContext, tmp_path: Path, *channels: tuple[str, str], **kw: Any
) -> Delivery:
    delivery = Delivery(load_channels(channels_file(tmp_path, *channels)), **kw)
    await delivery.announce(ctx.db)
    return delivery


def reaches_root(name: str) -> bool:
    logger: logging.Logger | None = logging.getLogger(name)
    while logger is not None and logger.parent is not None:
        if not logger.propagate:
            return False
        logger = logger.parent
    return True


async def notify(ctx: AppContext, category: Category, title: str = "Title") -> int:
    async with transaction(ctx, "test") as tx:
        return await tx.notify(category, Severity.WARNING, title, f"body of {title}")


async def row(ctx: AppContext, notification_id: int) -> dict[str, Any]:
    """The notification's summary and, under ``channels``, each channel's delivery."""
    found = await ctx.db.fetch_one(
        "SELECT webhook_state, webhook_attempts, webhook_next_at FROM notifications WHERE id = ?",
        (notification_id,),
    )
    assert found is not None
    deliveries = await ctx.db.fetch_all(
        "SELECT channel, state, attempts, next_at FROM notification_deliveries"
        " WHERE notification_id = ?",
        (notification_id,),
    )
    return {**dict(found), "channels": {str(d["channel"]): dict(d) for d in deliveries}}


async def make_due(ctx: AppContext) -> None:
    async with ctx.db.write() as conn:
        await conn.execute(
            "UPDATE notification_deliveries SET next_at = ? WHERE state = 'pending'",
            (iso(utcnow() - timedelta(seconds=1)),),
        )


async def test_a_notification_reaches_every_channel_once(
    ctx: AppContext, tmp_path: Path, receiver: Receiver
) -> None:
    other = Receiver()
    try:
        delivery = await delivery_for(ctx, tmp_path, ("phone", receiver.url), ("desk", other.url))
        first = await notify(ctx, Category.TASK, "Tâche finie")
        assert (await row(ctx, first))["webhook_state"] == "pending"
        report = await delivery.run_once(ctx.db)
        assert report.delivered == 2  # one delivery per channel
        for server in (receiver, other):
            (got,) = server.received
            assert got["title"] == "Tâche finie" and got["message"] == "body of Tâche finie"
            assert got["type"] == "warning" and got["path"] == f"/{SECRET_PATH}"
        state = await row(ctx, first)
        assert state["webhook_state"] == "delivered" and state["webhook_attempts"] == 1
        assert {c: (d["state"], d["attempts"]) for c, d in state["channels"].items()} == {
            "desk": ("sent", 1),
            "phone": ("sent", 1),
        }
        assert (await delivery.run_once(ctx.db)).delivered == 0  # sent once only
        assert len(receiver.received) == 1
    finally:
        other.stop()


async def test_without_a_channel_alerts_stay_on_the_pi_and_health_says_so(
    ctx: AppContext, tmp_path: Path, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    delivery = await delivery_for(ctx, tmp_path)
    first = await notify(ctx, Category.SECURITY)
    assert (await row(ctx, first))["webhook_state"] == "none"
    assert (await delivery.run_once(ctx.db)).delivered == 0
    health = (await client.get("/api/health", headers=admin_headers)).json()
    (repair,) = [r for r in health["repairs"] if r["check"] == "notify_channels"]
    assert repair["severity"] == "warning"
    assert repair["title"] == "no channel: alerts stay on the Pi"
    assert "app_notify_channels" in repair["fix"]
    view = (await client.get("/api/notifications/channels", headers=admin_headers)).json()
    assert view["channels"] == [] and view["warning"].startswith("no channel")


async def test_a_failing_channel_is_retried_with_backoff_then_given_up(
    ctx: AppContext, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.status = 500
    delivery = await delivery_for(
        ctx, tmp_path, ("phone", receiver.url), base_delay_s=60, max_attempts=3
    )
    first = await notify(ctx, Category.TASK)
    before = utcnow()
    assert (await delivery.run_once(ctx.db)).retried == 1
    state = await row(ctx, first)
    assert state["webhook_state"] == "pending" and state["webhook_attempts"] == 1
    assert 59 <= (parse_iso(state["webhook_next_at"]) - before).total_seconds() <= 62
    assert (await delivery.run_once(ctx.db)).retried == 0  # not due yet
    await make_due(ctx)
    before = utcnow()
    await delivery.run_once(ctx.db)
    state = await row(ctx, first)
    assert state["webhook_attempts"] == 2
    assert 119 <= (parse_iso(state["webhook_next_at"]) - before).total_seconds() <= 122
    await make_due(ctx)
    assert (await delivery.run_once(ctx.db)).failed == 1
    state = await row(ctx, first)
    assert (state["webhook_state"], state["webhook_attempts"]) == ("failed", 3)
    assert state["webhook_next_at"] is None
    assert (state["channels"]["phone"]["state"], state["channels"]["phone"]["attempts"]) == (
        "failed",
        3,
    )
    assert delivery.backoff_s(30) == delivery.max_delay_s
    channel = await ctx.db.fetch_one("SELECT last_error FROM notify_channels WHERE name = 'phone'")
    assert channel is not None and channel[0] == "the service answered HTTP 500"


async def test_a_dead_channel_opens_its_breaker_alone_and_recovers(
    ctx: AppContext,
    tmp_path: Path,
    receiver: Receiver,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
) -> None:
    healthy = Receiver()
    receiver.stop()  # nothing listens there: connection refused
    try:
        delivery = await delivery_for(
            ctx,
            tmp_path,
            ("phone", receiver.url),
            ("desk", healthy.url),
            failure_threshold=2,
            cool_down_s=0.3,
            base_delay_s=0.01,
        )
        ids = [await notify(ctx, Category.SECURITY, f"alert {i}") for i in range(3)]
        report = await delivery.run_once(ctx.db)
        # two attempts open phone's breaker; the third skips it, desk gets all three
        assert report.retried == 2 and report.skipped_open_circuit and report.delivered == 3
        assert healthy.titles() == ["alert 0", "alert 1", "alert 2"]
        view = (await client.get("/api/notifications/channels", headers=admin_headers)).json()
        states = {c["name"]: c for c in view["channels"]}
        assert states["phone"]["breaker_state"] == "open"
        assert states["phone"]["consecutive_failures"] == 2
        assert states["phone"]["last_error"] == "the service could not be reached"
        assert states["desk"]["breaker_state"] == "closed" and states["desk"]["last_delivered_at"]
        # back up: after the cool-down one trial closes the breaker, then the rest go
        receiver.start()
        await make_due(ctx)
        await asyncio.sleep(0.35)
        for _ in range(4):
            await delivery.run_once(ctx.db)
            await make_due(ctx)
        assert sorted(receiver.titles()) == ["alert 0", "alert 1", "alert 2"]
        assert healthy.titles() == ["alert 0", "alert 1", "alert 2"]  # never sent twice
        for notification_id in ids:
            assert (await row(ctx, notification_id))["webhook_state"] == "delivered"
        view = (await client.get("/api/notifications/channels", headers=admin_headers)).json()
        assert {c["name"]: c["breaker_state"] for c in view["channels"]} == {
            "desk": "closed",
            "phone": "closed",
        }
    finally:
        healthy.stop()


async def test_quiet_hours_defer_everything_but_security(
    ctx: AppContext, tmp_path: Path, receiver: Receiver
) -> None:
    delivery = await delivery_for(ctx, tmp_path, ("phone", receiver.url))
    now = utcnow()
    quiet = QuietHours(
        start=(now - timedelta(hours=1)).strftime("%H:%M"),
        end=(now + timedelta(hours=1)).strftime("%H:%M"),
    )
    async with ctx.db.write() as conn:
        await save_notification_policy(
            conn,
            NotificationPolicy(quiet_hours=quiet, quiet_categories=[Category.TASK]),
            expected_version=0,
            actor="test",
        )
    task = await notify(ctx, Category.TASK, "task")
    await notify(ctx, Category.MISSION, "mission")
    async with transaction(ctx, "test") as tx:
        await tx.security_alert("Alarm", "someone knocked")
    report = await delivery.run_once(ctx.db)
    assert report.deferred == 1 and report.delivered == 2  # one channel: one each
    assert sorted(receiver.titles()) == ["Alarm", "mission"]
    deferred = await row(ctx, task)
    assert deferred["webhook_state"] == "pending" and deferred["webhook_attempts"] == 0
    assert deferred["channels"]["phone"]["next_at"] == deferred["webhook_next_at"]
    until = parse_iso(deferred["webhook_next_at"])
    assert until.strftime("%H:%M") == quiet.end and until > now


async def test_send_test_is_queued_by_the_api_and_sent_by_the_notifier(
    ctx: AppContext,
    tmp_path: Path,
    receiver: Receiver,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    admin_user: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    delivery = await delivery_for(ctx, tmp_path, ("phone", receiver.url))
    queued = await client.post("/api/notifications/channels/phone/test", headers=admin_headers)
    assert queued.status_code == 202 and queued.json()["state"] == "pending"
    again = await client.post("/api/notifications/channels/phone/test", headers=admin_headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "test_pending"
    assert receiver.received == []  # the API sent nothing
    missing = await client.post("/api/notifications/channels/nope/test", headers=admin_headers)
    assert missing.status_code == 404 and "GET /api/notifications/channels" in missing.text
    bad = await client.post("/api/notifications/channels/Bad%20Name/test", headers=admin_headers)
    assert bad.status_code == 422
    assert (await delivery.run_once(ctx.db)).tests == 1
    assert receiver.titles() == ["Mission Control: test notification"]
    test_id = queued.json()["id"]
    done = (await client.get(f"/api/notifications/tests/{test_id}", headers=admin_headers)).json()
    assert done["state"] == "delivered" and done["outcome"] == "delivered"
    # the outcome of a failing test, on the page
    receiver.status = 500
    await client.post("/api/notifications/channels/phone/test", headers=admin_headers)
    await delivery.run_once(ctx.db)
    assert (await login(client, admin_user)).status_code == 200
    page = await client.get("/ui/notifications/channels")
    assert page.status_code == 200
    assert 'id="channel-phone"' in page.text and "Send test" in page.text
    assert 'data-test-state="failed"' in page.text and "HTTP 500" in page.text
    # no URL, path or secret anywhere: API, page, logs, database
    api = (await client.get("/api/notifications/channels", headers=admin_headers)).text
    # what reaches the root handler (the journal); apprise's and urllib3's own
    # loggers stop short of it (pytest still shows them to caplog)
    logs = "\n".join(
        r.getMessage() + str(r.__dict__) for r in caplog.records if reaches_root(r.name)
    )
    dump = "\n".join(str(tuple(r)) for r in await ctx.db.fetch_all("SELECT * FROM notify_channels"))
    dump += "\n".join(str(tuple(r)) for r in await ctx.db.fetch_all("SELECT * FROM notify_tests"))
    dump += "\n".join(str(tuple(r)) for r in await ctx.db.fetch_all("SELECT * FROM audit_log"))
    for text in (api, page.text, logs, dump):
        assert SECRET_PATH not in text and f":{receiver.port}" not in text
