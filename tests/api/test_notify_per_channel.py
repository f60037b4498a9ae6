"""Each channel has its own delivery of a notification (docs/notifications.md,
"Delivery"): its own state, attempts, next attempt and breaker. A channel that is
down neither holds back, re-sends nor marks failed what a working channel has.

Real components: a SQLite file, the notifier's ``Delivery`` with apprise, and
receivers on loopback (one down, one up)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.context import AppContext
from app.core.settings import Settings
from app.events.transaction import transaction
from app.events.types import Category, Severity
from app.notifications.channels import load_channels
from app.notifications.delivery import Delivery
from app.notifications.notifier import serve
from tests.support.api import login
from tests.support.receiver import Receiver


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"notify_poll_s": 0.05}


@pytest.fixture
def phone() -> Any:
    server = Receiver()
    try:
        yield server
    finally:
        server.hold.set()
        server.stop()


@pytest.fixture
def desk() -> Any:
    server = Receiver()
    try:
        yield server
    finally:
        server.stop()


async def delivery_for(
    ctx: AppContext, tmp_path: Path, phone: Receiver, desk: Receiver, **kw: Any
) -> Delivery:
    path = tmp_path / "notify.toml"
    path.write_text(
        f'[[channel]]\nname = "phone"\nurl = "{phone.url}"\n'
        f'[[channel]]\nname = "desk"\nurl = "{desk.url}"\n'
    )
    path.chmod(0o600)
    delivery = Delivery(load_channels(path), **kw)
    await delivery.announce(ctx.db)
    return delivery


async def notify(ctx: AppContext, title: str) -> int:
    async with transaction(ctx, "test") as tx:
        return await tx.notify(Category.SECURITY, Severity.CRITICAL, title, f"body of {title}")


async def view(client: httpx.AsyncClient, headers: dict[str, str], nid: int) -> dict[str, Any]:
    answer = await client.get(f"/api/notifications/{nid}", headers=headers)
    assert answer.status_code == 200
    found: dict[str, Any] = answer.json()
    return found


async def test_a_dead_channel_with_an_open_breaker_does_not_hold_back_the_working_one(
    ctx: AppContext, tmp_path: Path, phone: Receiver, desk: Receiver
) -> None:
    phone.stop()  # connection refused
    delivery = await delivery_for(
        ctx,
        tmp_path,
        phone,
        desk,
        batch=2,
        failure_threshold=2,
        cool_down_s=600,
        base_delay_s=0.01,
    )
    await notify(ctx, "alert 0")
    await notify(ctx, "alert 1")
    await delivery.run_once(ctx.db)
    assert desk.titles() == ["alert 0", "alert 1"]
    assert delivery.breakers["phone"].snapshot().state.value == "open"
    await asyncio.sleep(0.05)  # the first two are due again (for the phone only)
    await notify(ctx, "alert 2")
    for _ in range(3):
        await delivery.run_once(ctx.db)
    # the phone's waiting alerts must not fill every batch while its breaker is open
    assert desk.titles() == ["alert 0", "alert 1", "alert 2"]


async def test_what_a_channel_has_is_not_failed_nor_sent_again_because_another_fails(
    ctx: AppContext,
    tmp_path: Path,
    phone: Receiver,
    desk: Receiver,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    admin_user: str,
) -> None:
    phone.status = 500
    delivery = await delivery_for(
        ctx, tmp_path, phone, desk, max_attempts=3, base_delay_s=0.01, failure_threshold=10
    )
    nid = await notify(ctx, "alarm")
    await delivery.run_once(ctx.db)
    first = await view(client, admin_headers, nid)
    assert first["webhook_state"] == "pending"  # the phone still waits
    for _ in range(4):
        await asyncio.sleep(0.05)
        await delivery.run_once(ctx.db)
    assert desk.titles() == ["alarm"]  # once, never again on the phone's retries
    done = await view(client, admin_headers, nid)
    # the desk has it: the notification is not "failed", it reached some channels
    assert done["webhook_state"] == "partial"
    by_channel = {d["channel"]: d for d in done["deliveries"]}
    assert by_channel["desk"]["state"] == "sent" and by_channel["desk"]["attempts"] == 1
    assert by_channel["desk"]["sent_at"] and by_channel["desk"]["next_attempt_at"] is None
    assert by_channel["phone"]["state"] == "failed" and by_channel["phone"]["attempts"] == 3
    assert by_channel["phone"]["last_error"] == "the service answered HTTP 500"
    assert by_channel["phone"]["next_attempt_at"] is None
    # the notifications page says the same, per channel
    assert (await login(client, admin_user)).status_code == 200
    page = (await client.get("/ui/notifications")).text
    assert 'data-webhook-state="partial"' in page
    assert '<span data-channel="desk" data-state="sent">desk sent</span>' in page
    assert "phone not delivered (the service answered HTTP 500)" in page


async def test_each_channel_has_its_own_attempts_and_next_attempt(
    ctx: AppContext,
    tmp_path: Path,
    phone: Receiver,
    desk: Receiver,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
) -> None:
    phone.status = 500
    desk.status = 500
    delivery = await delivery_for(
        ctx, tmp_path, phone, desk, max_attempts=3, base_delay_s=0.2, failure_threshold=10
    )
    nid = await notify(ctx, "alarm")
    await delivery.run_once(ctx.db)  # both fail once
    desk.status = 200
    await asyncio.sleep(0.25)
    await delivery.run_once(ctx.db)  # the desk gets it, the phone fails again
    state = await view(client, admin_headers, nid)
    by_channel = {d["channel"]: d for d in state["deliveries"]}
    assert (by_channel["desk"]["state"], by_channel["desk"]["attempts"]) == ("sent", 2)
    assert (by_channel["phone"]["state"], by_channel["phone"]["attempts"]) == ("pending", 2)
    assert by_channel["phone"]["next_attempt_at"] and by_channel["phone"]["last_error"]
    assert state["webhook_state"] == "pending" and state["webhook_attempts"] == 2
    phone.status = 200
    await asyncio.sleep(0.45)
    await delivery.run_once(ctx.db)
    state = await view(client, admin_headers, nid)
    assert state["webhook_state"] == "delivered"
    assert {d["channel"]: d["attempts"] for d in state["deliveries"]} == {"desk": 2, "phone": 3}
    assert phone.titles() == ["alarm"] and desk.titles() == ["alarm"]


async def test_a_channel_that_hangs_does_not_delay_the_others(
    ctx: AppContext, tmp_path: Path, phone: Receiver, desk: Receiver
) -> None:
    phone.hold.clear()  # the phone's service takes its time to answer
    delivery = await delivery_for(ctx, tmp_path, phone, desk)
    await notify(ctx, "alarm")
    run = asyncio.create_task(delivery.run_once(ctx.db))
    try:
        for _ in range(60):
            if desk.received:
                break
            await asyncio.sleep(0.05)
        assert desk.titles() == ["alarm"], "the desk waited for the phone"
    finally:
        phone.hold.set()
        await run
    assert phone.titles() == ["alarm"]


async def until(what: str, check: Any, timeout_s: float = 3.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout_s} s")


async def test_the_notifier_keeps_sending_to_a_channel_while_another_hangs(
    ctx: AppContext, settings: Settings, tmp_path: Path, phone: Receiver, desk: Receiver
) -> None:
    phone.hold.clear()  # the phone's service hangs on the first alert
    delivery = await delivery_for(ctx, tmp_path, phone, desk)
    stop = asyncio.Event()
    notifier = asyncio.create_task(serve(settings, delivery, stop))
    try:
        await notify(ctx, "first")
        await until("the desk gets the first", lambda: desk.titles() == ["first"])
        await notify(ctx, "second")
        # the phone's round has not ended, the desk's own loop goes on
        await until("the desk gets the second", lambda: desk.titles() == ["first", "second"])
        assert phone.received == []
        phone.hold.set()
        await until("the phone gets both", lambda: sorted(phone.titles()) == ["first", "second"])
    finally:
        phone.hold.set()
        stop.set()
        await notifier
    assert desk.titles() == ["first", "second"] and sorted(phone.titles()) == ["first", "second"]


async def test_a_new_channels_file_gives_up_a_removed_channel_and_serves_a_new_one(
    ctx: AppContext,
    tmp_path: Path,
    phone: Receiver,
    desk: Receiver,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
) -> None:
    phone.stop()
    delivery = await delivery_for(ctx, tmp_path, phone, desk, base_delay_s=0.01)
    nid = await notify(ctx, "alarm")
    await delivery.run_once(ctx.db)
    assert (await view(client, admin_headers, nid))["webhook_state"] == "pending"
    tablet = Receiver()
    try:
        # the notifier restarts with the phone replaced by a tablet
        path = tmp_path / "notify.toml"
        path.write_text(
            f'[[channel]]\nname = "desk"\nurl = "{desk.url}"\n'
            f'[[channel]]\nname = "tablet"\nurl = "{tablet.url}"\n'
        )
        restarted = Delivery(load_channels(path))
        await restarted.announce(ctx.db)
        await restarted.run_once(ctx.db)
        assert tablet.titles() == ["alarm"] and desk.titles() == ["alarm"]
    finally:
        tablet.stop()
    done = await view(client, admin_headers, nid)
    by_channel = {d["channel"]: d for d in done["deliveries"]}
    assert {c: d["state"] for c, d in by_channel.items()} == {
        "desk": "sent",
        "phone": "failed",
        "tablet": "sent",
    }
    assert by_channel["phone"]["last_error"] == "the channel is no longer in the notifier's file"
    assert done["webhook_state"] == "partial"
