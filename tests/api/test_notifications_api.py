"""Notifications: listing, muted ones, marking read, the unread summary (F6)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.core.context import AppContext
from app.events.transaction import transaction
from app.events.types import Category, Severity
from app.notifications.store import insert_notification
from app.policies.model import NotificationPolicy
from app.policies.store import save_notification_policy
from app.security.principal import Scope
from tests.support.api import TokenFactory, assert_error_shape, bearer

URL = "/api/notifications"


async def notify(ctx: AppContext, category: Category, title: str = "t") -> int:
    async with transaction(ctx, "test") as tx:
        return await tx.notify(category, Severity.INFO, title, "body")


async def mute(ctx: AppContext, *categories: Category) -> None:
    async with ctx.db.write() as conn:
        version = await save_notification_policy(
            conn,
            NotificationPolicy(muted_categories=list(categories)),
            expected_version=0,
            actor="test",
        )
    assert version == 1


async def titles(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[str]:
    response = await client.get(URL, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return [item["title"] for item in response.json()["items"]]


async def test_list_filters_and_hides_muted_ones(
    client: httpx.AsyncClient, make_token: TokenFactory, ctx: AppContext
) -> None:
    await mute(ctx, Category.TASK)
    await notify(ctx, Category.MISSION, "mission")
    await notify(ctx, Category.TASK, "muted task")
    await notify(ctx, Category.SECURITY, "security")
    headers = bearer(await make_token(Scope.READ))
    assert await titles(client, headers) == ["security", "mission"]
    assert await titles(client, headers, include_muted="true") == [
        "security",
        "muted task",
        "mission",
    ]
    assert await titles(client, headers, category="mission") == ["mission"]
    assert await titles(client, headers, unread="false") == []
    first = (await client.get(URL, headers=headers)).json()["items"][0]
    assert first["muted"] is False and first["read"] is False and first["category"] == "security"


async def test_a_security_notification_is_never_hidden_even_if_stored_muted(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    async with ctx.db.write() as conn:  # as a tampered row or a buggy writer would leave it
        await insert_notification(
            conn,
            category=Category.SECURITY,
            severity=Severity.CRITICAL,
            title="intrusion",
            body="",
            muted=True,
            webhook=False,
        )
    assert await titles(client, admin_headers) == ["intrusion"]
    summary = (await client.get(f"{URL}/summary", headers=admin_headers)).json()
    assert summary["unread"]["security"] == 1 and summary["muted_unread"] == 0


async def test_mark_read_needs_operate_and_is_audited(
    client: httpx.AsyncClient, make_token: TokenFactory, ctx: AppContext
) -> None:
    first = await notify(ctx, Category.TASK, "one")
    read_token, operate = await make_token(Scope.READ), await make_token(Scope.OPERATE)
    refused = await client.post(f"{URL}/{first}/read", headers=bearer(read_token))
    assert_error_shape(refused, 403, "insufficient_scope")
    marked = await client.post(f"{URL}/{first}/read", headers=bearer(operate))
    assert marked.status_code == 200
    assert marked.json()["read"] is True and marked.json()["read_at"]
    again = await client.post(f"{URL}/{first}/read", headers=bearer(operate))
    assert again.status_code == 200 and again.json()["read_at"] == marked.json()["read_at"]
    audits = await ctx.db.fetch_all(
        "SELECT target FROM audit_log WHERE action = 'notification.read'"
    )
    assert [r[0] for r in audits] == [f"notification:{first}"]
    assert_error_shape(
        await client.post(f"{URL}/999999/read", headers=bearer(operate)), 404, "not_found"
    )
    got = await client.get(f"{URL}/{first}", headers=bearer(read_token))
    assert got.json()["read"] is True
    assert_error_shape(await client.get(f"{URL}/424242", headers=bearer(read_token)), 404)


async def test_read_all_and_summary(
    client: httpx.AsyncClient, make_token: TokenFactory, ctx: AppContext
) -> None:
    await mute(ctx, Category.RULE)
    for category in (Category.TASK, Category.TASK, Category.MISSION, Category.RULE):
        await notify(ctx, category)
    operate = bearer(await make_token(Scope.OPERATE))
    summary = (await client.get(f"{URL}/summary", headers=operate)).json()
    assert summary["unread"]["task"] == 2 and summary["unread"]["mission"] == 1
    assert summary["unread"]["rule"] == 0 and summary["muted_unread"] == 1
    assert summary["total_unread"] == 3 and set(summary["unread"]) == {c.value for c in Category}
    only_tasks = await client.post(f"{URL}/read-all", headers=operate, json={"category": "task"})
    assert only_tasks.json() == {"marked_read": 2}
    everything = await client.post(f"{URL}/read-all", headers=operate)
    assert everything.json() == {"marked_read": 2}
    summary = (await client.get(f"{URL}/summary", headers=operate)).json()
    assert summary["total_unread"] == 0 and summary["muted_unread"] == 0
    audits = await ctx.db.fetch_all(
        "SELECT summary FROM audit_log WHERE action = 'notification.read_all' ORDER BY id"
    )
    assert len(audits) == 2
    refused = await client.post(f"{URL}/read-all", headers=bearer(await make_token(Scope.READ)))
    assert_error_shape(refused, 403, "insufficient_scope")


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", URL, {"params": {"category": "everything"}}, 422),
        ("GET", URL, {"params": {"unread": "maybe"}}, 422),
        ("GET", URL, {"params": {"limit": 1000}}, 422),
        ("POST", f"{URL}/read-all", {"json": {"category": "task", "all": True}}, 422),
        ("POST", f"{URL}/read-all", {"json": {"category": "nope"}}, 422),
        ("POST", f"{URL}/read-all", {"content": b"{not json"}, 400),
        ("POST", f"{URL}/{2**70}/read", {}, 422),
        ("POST", f"{URL}/abc/read", {}, 422),
        ("GET", f"{URL}/0", {}, 422),
    ],
)
async def test_bad_input_gets_a_4xx_in_the_error_shape(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
) -> None:
    headers = dict(admin_headers)
    if "content" in kwargs:
        headers["Content-Type"] = "application/json"
    response = await client.request(method, path, headers=headers, **kwargs)
    assert_error_shape(response, status)
