"""Mission proposals are machine-bounded (F17): defaults are the ceilings, and a
proposal above a ceiling is refused with a 422 that names each bound."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.core.context import AppContext
from tests.support.api import TokenFactory, assert_error_shape
from tests.support.tasks import (
    GITHUB_TOKEN,
    count,
    make_agent,
    mission_body,
    operate_headers,
    rows,
)

CEILINGS = {"cost_usd": 10.0, "steps": 10, "step_minutes": 15, "tokens": 500_000}


@pytest.fixture
async def operate(make_token: TokenFactory) -> dict[str, str]:
    return await operate_headers(make_token)


@pytest.fixture
async def agent(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> dict[str, Any]:
    return await make_agent(client, admin_headers)


async def propose(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]
) -> httpx.Response:
    return await client.post("/api/missions", json=body, headers=headers)


async def test_bounds_default_to_the_ceilings(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    response = await propose(client, operate, mission_body([agent["id"], agent["id"]]))
    assert response.status_code == 201, response.text
    mission = response.json()
    assert mission["bounds"] == CEILINGS
    assert mission["status"] == "proposed"
    assert mission["proposed_by"].startswith("token:")
    assert [s["index"] for s in mission["steps"]] == [1, 2]
    assert mission["spent_cost_usd"] == 0 and mission["spent_tokens"] == 0
    assert rows(ctx, "SELECT outcome FROM audit_log WHERE action = 'mission.propose'") == [("ok",)]
    assert rows(ctx, "SELECT subject_id FROM events WHERE type = 'mission.proposed'") == [
        (mission["id"],)
    ]


async def test_lower_bounds_are_kept(
    client: httpx.AsyncClient, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    bounds = {"cost_usd": 1.5, "steps": 2, "step_minutes": 5, "tokens": 10_000}
    response = await propose(client, operate, mission_body([agent["id"]], bounds=bounds))
    assert response.status_code == 201
    assert response.json()["bounds"] == bounds


@pytest.mark.parametrize(
    ("bound", "requested"),
    [("cost_usd", 12), ("steps", 11), ("step_minutes", 16), ("tokens", 500_001)],
)
async def test_each_bound_above_its_ceiling_is_named(
    client: httpx.AsyncClient,
    ctx: AppContext,
    operate: dict[str, str],
    agent: dict[str, Any],
    bound: str,
    requested: int,
) -> None:
    response = await propose(
        client, operate, mission_body([agent["id"]], bounds={bound: requested})
    )
    assert_error_shape(response, 422, "proposal_refused")
    details = response.json()["error"]["details"]
    assert len(details) == 1
    assert {k: details[0][k] for k in ("bound", "ceiling", "requested")} == {
        "bound": bound,
        "ceiling": CEILINGS[bound],
        "requested": requested,
    }
    assert count(ctx, "missions") == 0
    assert rows(ctx, "SELECT outcome FROM audit_log WHERE action = 'mission.propose'") == [
        ("refused",)
    ]
    escalation = rows(ctx, "SELECT details FROM escalations WHERE kind = 'mission_bound_exceeded'")
    assert len(escalation) == 1
    assert json.loads(escalation[0][0])["bounds"][0]["bound"] == bound


async def test_every_bound_exceeded_is_listed(
    client: httpx.AsyncClient, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    too_much = {"cost_usd": 99.5, "steps": 50, "step_minutes": 600, "tokens": 10**9}
    response = await propose(client, operate, mission_body([agent["id"]], bounds=too_much))
    assert_error_shape(response, 422, "proposal_refused")
    named = {d["bound"]: d["requested"] for d in response.json()["error"]["details"]}
    assert named == too_much


async def test_more_steps_than_the_steps_bound(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    three = mission_body([agent["id"]] * 3, bounds={"steps": 2})
    response = await propose(client, operate, three)
    assert_error_shape(response, 422, "proposal_refused")
    assert response.json()["error"]["details"] == [
        {
            "check": "steps_within_bound",
            "bound": "steps",
            "ceiling": 2,
            "requested": 3,
            "message": "3 steps listed; the bound is 2",
        }
    ]
    eleven = await propose(client, operate, mission_body([agent["id"]] * 11))
    assert_error_shape(eleven, 422, "proposal_refused")
    assert eleven.json()["error"]["details"][0]["ceiling"] == 10
    assert count(ctx, "missions") == 0


@pytest.mark.parametrize(
    "settings_overrides", [{"mission_max_cost_usd": 2.0, "mission_max_tokens": 1000}]
)
async def test_ceilings_are_configurable(
    client: httpx.AsyncClient, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    ok = await propose(client, operate, mission_body([agent["id"]]))
    assert ok.json()["bounds"]["cost_usd"] == 2.0 and ok.json()["bounds"]["tokens"] == 1000
    refused = await propose(client, operate, mission_body([agent["id"]], bounds={"cost_usd": 3}))
    assert refused.json()["error"]["details"][0]["ceiling"] == 2.0


async def test_step_agents_must_exist_and_be_active(
    client: httpx.AsyncClient,
    ctx: AppContext,
    operate: dict[str, str],
    agent: dict[str, Any],
    admin_headers: dict[str, str],
) -> None:
    paused = await make_agent(client, admin_headers, name="sleepy")
    await client.post(f"/api/agents/{paused['id']}/pause", headers=admin_headers)
    response = await propose(client, operate, mission_body([agent["id"], 999, paused["id"]]))
    assert_error_shape(response, 422, "proposal_refused")
    assert [(d["check"], d["field"]) for d in response.json()["error"]["details"]] == [
        ("agent_exists", "steps[1].agent_id"),
        ("agent_active", "steps[2].agent_id"),
    ]
    assert count(ctx, "missions") == 0
    assert count(ctx, "escalations", "kind = 'mission_bound_exceeded'") == 0


async def test_no_credentials_in_a_proposal(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    body = mission_body([agent["id"]])
    body["steps"][0]["instructions"] = f"push with {GITHUB_TOKEN}"
    response = await propose(client, operate, body)
    assert_error_shape(response, 422, "proposal_refused")
    assert response.json()["error"]["details"][0]["field"] == "steps[0].instructions"
    assert GITHUB_TOKEN not in json.dumps(rows(ctx, "SELECT * FROM audit_log"))


@pytest.mark.parametrize(
    "patch",
    [
        {"bounds": {"cost_usd": -1}},
        {"bounds": {"cost_usd": 0}},
        {"bounds": {"steps": "3"}},
        {"bounds": {"steps": 2.5}},
        {"bounds": {"tokens": 0}},
        {"bounds": {"budget": 5}},
        {"steps": []},
        {"steps": [{"title": "s", "agent_id": 1, "shell": "rm -rf /"}]},
        {"title": ""},
        {"goal": "g" * 5001},
        {"status": "approved"},
        {"proposed_by": "user:someone-else"},
    ],
)
async def test_bad_proposals_are_validation_errors(
    client: httpx.AsyncClient,
    ctx: AppContext,
    operate: dict[str, str],
    agent: dict[str, Any],
    patch: dict[str, Any],
) -> None:
    response = await propose(client, operate, {**mission_body([agent["id"]]), **patch})
    assert_error_shape(response, 422, "validation_failed")
    assert count(ctx, "missions") == 0


async def test_infinite_cost_is_refused(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    body = json.dumps(mission_body([agent["id"]])).replace(
        '"steps": [', '"bounds": {"cost_usd": 1e999}, "steps": ['
    )
    response = await client.post(
        "/api/missions", content=body, headers={**operate, "Content-Type": "application/json"}
    )
    assert_error_shape(response, 422)
    assert count(ctx, "missions") == 0
