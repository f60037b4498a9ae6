"""Notification policy (F6): security can never be silenced; every change is loud."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.core.context import AppContext
from app.events.transaction import transaction
from app.events.types import Category, Severity
from app.security.principal import Scope
from tests.support.api import TokenFactory, assert_error_shape, bearer
from tests.support.rules import count, security_titles, snapshot

URL = "/api/policies/notifications"


def policy(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "muted_categories": [],
        "quiet_hours": None,
        "quiet_categories": [],
        "webhook_categories": [c.value for c in Category],
        "version": 0,
    }
    body.update(fields)
    return body


async def test_read_scope_sees_the_default_policy(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    response = await client.get(URL, headers=bearer(await make_token(Scope.READ)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 0
    assert body["policy"]["muted_categories"] == []
    assert "security" in body["policy"]["webhook_categories"]


async def test_a_change_is_versioned_audited_and_raises_a_security_alert(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    response = await client.put(
        URL,
        json=policy(
            muted_categories=["task"],
            quiet_hours={"start": "22:00", "end": "07:00"},
            quiet_categories=["runner"],
        ),
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 1
    assert response.json()["policy"]["muted_categories"] == ["task"]
    assert (await client.get(URL, headers=admin_headers)).json()["version"] == 1

    audit = await ctx.db.fetch_all(
        "SELECT summary, outcome FROM audit_log WHERE action = 'policy.notifications.update'"
    )
    assert len(audit) == 1 and audit[0]["outcome"] == "ok"
    summary = json.loads(audit[0]["summary"])
    assert summary["before"]["muted_categories"] == []
    assert summary["after"]["muted_categories"] == ["task"]
    assert "Notification policy changed" in await security_titles(ctx)
    assert await count(ctx, "SELECT count(*) FROM events WHERE type = 'policy.changed'") == 1
    assert await count(ctx, "SELECT count(*) FROM events WHERE type = 'security.alert'") == 1


async def test_even_a_no_op_change_raises_a_security_alert(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    for version in (0, 1):
        response = await client.put(URL, json=policy(version=version), headers=admin_headers)
        assert response.status_code == 200, response.text
    assert (await security_titles(ctx)).count("Notification policy changed") == 2
    audit = await count(
        ctx, "SELECT count(*) FROM audit_log WHERE action = 'policy.notifications.update'"
    )
    assert audit == 2


async def test_a_stale_version_is_a_conflict(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    first = await client.put(URL, json=policy(muted_categories=["task"]), headers=admin_headers)
    assert first.status_code == 200
    before = snapshot(ctx)
    stale = await client.put(URL, json=policy(muted_categories=["runner"]), headers=admin_headers)
    assert_error_shape(stale, 409, "conflict")
    assert snapshot(ctx) == before
    current = (await client.get(URL, headers=admin_headers)).json()
    assert current["policy"]["muted_categories"] == ["task"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"muted_categories": ["security"]}, "muted_categories"),
        ({"muted_categories": ["task", "security", "rule"]}, "muted_categories"),
        (
            {"quiet_hours": {"start": "00:00", "end": "23:59"}, "quiet_categories": ["security"]},
            "quiet_categories",
        ),
        ({"webhook_categories": ["task"]}, "webhook_categories"),
        ({"webhook_categories": []}, "webhook_categories"),
    ],
)
async def test_silencing_security_is_refused_recorded_and_alerted(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    ctx: AppContext,
    fields: dict[str, Any],
    field: str,
) -> None:
    response = await client.put(URL, json=policy(**fields), headers=admin_headers)
    assert_error_shape(response, 422, "security_locked")
    details = response.json()["error"]["details"]
    assert [d["loc"] for d in details] == [["body", field]]
    assert await count(ctx, "SELECT count(*) FROM policies") == 0
    refused = await ctx.db.fetch_all(
        "SELECT summary FROM audit_log WHERE action = 'policy.notifications.update'"
        " AND outcome = 'refused'"
    )
    assert len(refused) == 1
    assert field in json.loads(refused[0]["summary"])["reason"]
    assert any(
        t.startswith("Refused: policy.notifications.update") for t in await security_titles(ctx)
    )


async def test_after_muting_a_category_security_still_arrives_unmuted(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    response = await client.put(
        URL,
        json=policy(
            muted_categories=["task", "rule", "escalation", "system", "mission", "runner"],
            quiet_hours={"start": "00:00", "end": "23:59"},
            quiet_categories=["task"],
        ),
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    async with transaction(ctx, "user:test", "test") as tx:
        task_id = await tx.notify(Category.TASK, Severity.INFO, "task done")
        alert_id = await tx.security_alert("intruder", "someone knocked")
    rows = {
        r["id"]: r
        for r in await ctx.db.fetch_all(
            "SELECT id, category, muted FROM notifications WHERE id IN (?, ?)",
            (task_id, alert_id),
        )
    }
    assert rows[task_id]["muted"] == 1
    assert rows[alert_id]["muted"] == 0 and rows[alert_id]["category"] == "security"
    events = await ctx.db.fetch_all(
        "SELECT payload FROM events WHERE type = 'notification.created' AND subject_id = ?",
        (alert_id,),
    )
    assert json.loads(events[0]["payload"])["muted"] is False
    assert json.loads(events[0]["payload"])["quiet"] is False


@pytest.mark.parametrize("scope", [Scope.READ, Scope.OPERATE])
async def test_only_admins_change_the_policy(
    client: httpx.AsyncClient, make_token: TokenFactory, ctx: AppContext, scope: Scope
) -> None:
    headers = bearer(await make_token(scope))
    response = await client.put(URL, json=policy(muted_categories=["task"]), headers=headers)
    assert_error_shape(response, 403, "insufficient_scope")
    assert await count(ctx, "SELECT count(*) FROM policies") == 0
    refused = await count(
        ctx,
        "SELECT count(*) FROM audit_log WHERE action = 'PUT /api/policies/notifications'"
        " AND outcome = 'refused'",
    )
    assert refused == 1
    assert any("Refused" in t for t in await security_titles(ctx))


@pytest.mark.parametrize(
    "body",
    [
        policy(muted_categories=["everything"]),
        policy(mute_all=True),
        policy(quiet_hours={"start": "25:00", "end": "07:00"}),
        policy(quiet_hours={"start": "22:00", "end": "07:00", "tz": "x"}),
        {"muted_categories": ["task"]},
        policy(muted_categories="task"),
        policy(webhook_categories=["security"] * 17),
        [],
    ],
)
async def test_bad_policies_are_refused_cleanly(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext, body: Any
) -> None:
    before = snapshot(ctx)
    response = await client.put(URL, json=body, headers=admin_headers)
    assert_error_shape(response, 422, "validation_failed")
    assert snapshot(ctx) == before
