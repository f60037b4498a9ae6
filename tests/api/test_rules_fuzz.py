"""Arbitrary JSON to the rule endpoints: never a 500, never a rule outside the allow-lists.

Hypothesis drives a synchronous property in a worker thread; each example calls
the real app on the test's event loop (``anyio.from_thread.run``), so one app
and one database serve every example.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import httpx
from hypothesis import HealthCheck, given, settings

from app.core.context import AppContext
from app.rules.engine import stored_spec
from app.rules.schemas import RuleCreate
from tests.support.rules import NOTIFY_RULE, create_agent, create_rule
from tests.unit import test_rule_schema_properties as props

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def check_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}


async def test_fuzzed_bodies_never_break_the_rule_endpoints(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> None:
    await create_agent(client, admin_headers)
    anchor = await create_rule(client, admin_headers, NOTIFY_RULE)
    url = f"/api/rules/{anchor['id']}"

    async def send(method: str, path: str, body: Any) -> httpx.Response:
        # json.dumps writes NaN and Infinity too: the API must refuse them cleanly.
        return await client.request(
            method,
            path,
            content=json.dumps(body),
            headers={**admin_headers, "Content-Type": "application/json"},
        )

    async def one_example(body: Any, event: Any) -> None:
        check_answer(await send("POST", "/api/rules", body))
        version = (await client.get(url, headers=admin_headers)).json()["version"]
        patch = body if isinstance(body, dict) else {"then": body}
        check_answer(await send("PATCH", url, {**patch, "version": version}))
        check_answer(await send("POST", f"{url}/dry-run", {"event": event}))
        if isinstance(event, dict):
            shaped = {"event": {"type": "task.created", "subject_id": 1, "payload": event}}
            response = await send("POST", f"{url}/dry-run", shaped)
            check_answer(response)
            assert response.status_code in (200, 422)

    @FUZZ
    @given(body=props.any_json | props.rule_shaped | props.nearly_valid, event=props.any_json)
    def run(body: Any, event: Any) -> None:
        anyio.from_thread.run(one_example, body, event)

    await anyio.to_thread.run_sync(run)

    rows = await ctx.db.fetch_all(
        "SELECT id, name, event_type, conditions, actions, max_firings_per_hour FROM rules"
    )
    assert len(rows) >= 1
    for row in rows:
        spec = stored_spec(row)
        props.assert_within_allow_lists(RuleCreate.model_validate(spec.model_dump()))
    listing = (await client.get("/api/rules?limit=200", headers=admin_headers)).json()
    for item in listing["items"]:
        spec_fields = {k: item[k] for k in ("name", "on", "when", "then", "max_firings_per_hour")}
        props.assert_within_allow_lists(RuleCreate.model_validate(spec_fields))
