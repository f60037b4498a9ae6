"""Escalations (F21): list, detail, acknowledge, resolve, summary; every change
audited and on the live feed; illegal transitions and stale versions are 409."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.core.context import AppContext
from app.events.transaction import transaction
from app.security.principal import Scope
from tests.support.api import TokenFactory, assert_error_shape, bearer

URL = "/api/escalations"


async def escalate(ctx: AppContext, kind: str = "preflight_refused", subject_id: int = 1) -> int:
    async with transaction(ctx, "system:test") as tx:
        return await tx.escalate(kind, "task", subject_id, f"{kind} needs a human", {"n": 1})


@pytest.fixture
async def operate(make_token: TokenFactory) -> dict[str, str]:
    return bearer(await make_token(Scope.OPERATE))


@pytest.fixture
async def reader(make_token: TokenFactory) -> dict[str, str]:
    return bearer(await make_token(Scope.READ))


async def test_list_filter_and_detail(
    client: httpx.AsyncClient, ctx: AppContext, reader: dict[str, str], operate: dict[str, str]
) -> None:
    first = await escalate(ctx, "preflight_refused")
    second = await escalate(ctx, "quota_hit")
    third = await escalate(ctx, "quota_hit")
    await client.post(f"{URL}/{third}/acknowledge", headers=operate)

    async def ids(**params: Any) -> list[int]:
        response = await client.get(URL, headers=reader, params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids() == [third, second, first]
    assert await ids(kind="quota_hit") == [third, second]
    assert await ids(status="open") == [second, first]
    assert await ids(status="acknowledged", kind="quota_hit") == [third]
    assert await ids(limit=1, offset=1) == [second]
    detail = (await client.get(f"{URL}/{first}", headers=reader)).json()
    assert detail["kind"] == "preflight_refused" and detail["status"] == "open"
    assert detail["details"] == {"n": 1} and detail["version"] == 1
    assert (
        detail["subject_type"] == "task" and detail["reason"] == "preflight_refused needs a human"
    )
    assert_error_shape(await client.get(f"{URL}/9999", headers=reader), 404, "not_found")


async def test_acknowledge_then_resolve_is_audited_and_published(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str]
) -> None:
    escalation = await escalate(ctx)
    acked = await client.post(f"{URL}/{escalation}/acknowledge", headers=operate)
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert body["status"] == "acknowledged" and body["acknowledged_by"].startswith("token:")
    assert body["version"] == 2
    resolved = await client.post(
        f"{URL}/{escalation}/resolve", headers=operate, json={"comment": "  raised the quota  "}
    )
    assert resolved.status_code == 200
    body = resolved.json()
    assert body["status"] == "resolved" and body["resolution_comment"] == "raised the quota"
    assert body["resolved_at"] and body["version"] == 3
    audit = await ctx.db.fetch_all(
        "SELECT action, target FROM audit_log WHERE action LIKE 'escalation.%' ORDER BY id"
    )
    assert [tuple(r) for r in audit] == [
        ("escalation.acknowledged", f"escalation:{escalation}"),
        ("escalation.resolved", f"escalation:{escalation}"),
    ]
    events = await ctx.db.fetch_all(
        "SELECT type, subject_id, min_scope FROM events WHERE type LIKE 'escalation.%' ORDER BY id"
    )
    assert [tuple(e) for e in events] == [
        ("escalation.opened", escalation, "operate"),
        ("escalation.acknowledged", escalation, "operate"),
        ("escalation.resolved", escalation, "operate"),
    ]


async def test_resolve_straight_from_open(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str]
) -> None:
    escalation = await escalate(ctx)
    response = await client.post(
        f"{URL}/{escalation}/resolve", headers=operate, json={"comment": "false alarm"}
    )
    assert response.json()["status"] == "resolved" and response.json()["acknowledged_at"] is None


async def test_illegal_transitions_are_409_and_change_nothing(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str]
) -> None:
    escalation = await escalate(ctx)
    await client.post(f"{URL}/{escalation}/acknowledge", headers=operate)
    twice = await client.post(f"{URL}/{escalation}/acknowledge", headers=operate)
    assert_error_shape(twice, 409, "invalid_transition")
    await client.post(f"{URL}/{escalation}/resolve", headers=operate, json={"comment": "done"})
    for path, body in (("acknowledge", None), ("resolve", {"comment": "again"})):
        response = await client.post(f"{URL}/{escalation}/{path}", headers=operate, json=body)
        assert_error_shape(response, 409, "invalid_transition")
    row = await ctx.db.fetch_one(
        "SELECT status, resolution_comment, version FROM escalations WHERE id = ?", (escalation,)
    )
    assert row is not None and tuple(row) == ("resolved", "done", 3)
    count = await ctx.db.fetch_one(
        "SELECT count(*) FROM audit_log WHERE action LIKE 'escalation.%'"
    )
    assert count is not None and count[0] == 2
    missing = await client.post(f"{URL}/4242/acknowledge", headers=operate)
    assert_error_shape(missing, 404, "not_found")


async def test_a_stale_version_is_a_conflict(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str]
) -> None:
    escalation = await escalate(ctx)
    stale = await client.post(
        f"{URL}/{escalation}/acknowledge", headers=operate, json={"version": 7}
    )
    assert_error_shape(stale, 409, "conflict")
    fresh = await client.post(
        f"{URL}/{escalation}/acknowledge", headers=operate, json={"version": 1}
    )
    assert fresh.status_code == 200
    stale = await client.post(
        f"{URL}/{escalation}/resolve", headers=operate, json={"comment": "x", "version": 1}
    )
    assert_error_shape(stale, 409, "conflict")


async def test_changes_need_operate(
    client: httpx.AsyncClient, ctx: AppContext, reader: dict[str, str]
) -> None:
    escalation = await escalate(ctx)
    refused = await client.post(f"{URL}/{escalation}/acknowledge", headers=reader)
    assert_error_shape(refused, 403, "insufficient_scope")
    refused = await client.post(
        f"{URL}/{escalation}/resolve", headers=reader, json={"comment": "x"}
    )
    assert_error_shape(refused, 403, "insufficient_scope")
    row = await ctx.db.fetch_one("SELECT status FROM escalations WHERE id = ?", (escalation,))
    assert row is not None and row[0] == "open"


async def test_a_secret_in_a_comment_is_not_kept(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str]
) -> None:
    escalation = await escalate(ctx)
    secret = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    response = await client.post(
        f"{URL}/{escalation}/resolve", headers=operate, json={"comment": f"rotated {secret}"}
    )
    assert response.status_code == 200
    assert secret not in response.text and "[REDACTED:" in response.json()["resolution_comment"]


async def test_summary_counts(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str], reader: dict[str, str]
) -> None:
    ids = [await escalate(ctx, kind) for kind in ("quota_hit", "quota_hit", "circuit_open", "x")]
    await client.post(f"{URL}/{ids[0]}/acknowledge", headers=operate)
    await client.post(f"{URL}/{ids[3]}/resolve", headers=operate, json={"comment": "ok"})
    summary = (await client.get(f"{URL}/summary", headers=reader)).json()
    assert summary == {
        "open": 2,
        "acknowledged": 1,
        "resolved": 1,
        "needs_attention": 3,
        "open_by_kind": {"circuit_open": 1, "quota_hit": 2},
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", f"{URL}/1/resolve", {}, 422),
        ("POST", f"{URL}/1/resolve", {"comment": ""}, 422),
        ("POST", f"{URL}/1/resolve", {"comment": "   "}, 422),
        ("POST", f"{URL}/1/resolve", {"comment": "x" * 2001}, 422),
        ("POST", f"{URL}/1/resolve", {"comment": "ok", "status": "open"}, 422),
        ("POST", f"{URL}/1/resolve", {"comment": 5}, 422),
        ("POST", f"{URL}/1/acknowledge", {"by": "me"}, 422),
        ("POST", f"{URL}/1/acknowledge", {"version": "one"}, 422),
        ("POST", f"{URL}/{2**70}/acknowledge", None, 422),
        ("GET", f"{URL}?status=closed", None, 422),
        ("GET", f"{URL}?kind=" + "k" * 65, None, 422),
    ],
)
async def test_bad_input_gets_a_4xx_in_the_error_shape(
    client: httpx.AsyncClient,
    ctx: AppContext,
    operate: dict[str, str],
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    await escalate(ctx)
    response = await client.request(method, path, headers=operate, json=body)
    assert_error_shape(response, status)
    row = await ctx.db.fetch_one("SELECT status, version FROM escalations WHERE id = 1")
    assert row is not None and tuple(row) == ("open", 1)


async def test_a_comment_of_2000_characters_is_fine(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str]
) -> None:
    escalation = await escalate(ctx)
    comment = "word " * 400
    response = await client.post(
        f"{URL}/{escalation}/resolve", headers=operate, json={"comment": comment}
    )
    assert response.status_code == 200
    assert response.json()["resolution_comment"] == comment.strip()
