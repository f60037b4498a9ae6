"""Pre-flight validation of new tasks (F16): every check refuses on its own, all
failures are listed together, and a refusal stores nothing but its own record."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.clock import iso, now_iso
from app.core.context import AppContext
from app.tasks import preflight
from tests.support.api import TokenFactory, assert_error_shape
from tests.support.tasks import (
    GITHUB_TOKEN,
    approved_mission,
    count,
    domain_snapshot,
    events_of,
    execute,
    make_agent,
    new_task,
    operate_headers,
    post_task,
    rows,
)


@dataclass
class Env:
    app: FastAPI
    client: httpx.AsyncClient
    ctx: AppContext
    admin: dict[str, str]
    operate: dict[str, str]
    agent: dict[str, Any]


@pytest.fixture
async def env(
    app: FastAPI,
    client: httpx.AsyncClient,
    ctx: AppContext,
    admin_headers: dict[str, str],
    make_token: TokenFactory,
) -> Env:
    agent = await make_agent(client, admin_headers)
    return Env(app, client, ctx, admin_headers, await operate_headers(make_token), agent)


def heartbeat(ctx: AppContext, state: dict[str, Any], seen_at: str | None = None) -> None:
    execute(
        ctx,
        "INSERT INTO worker_heartbeats (worker_id, pid, hostname, started_at, seen_at, state)"
        " VALUES (?, 1, 'pi', ?, ?, ?)",
        (f"w{count(ctx, 'worker_heartbeats')}", now_iso(), seen_at or now_iso(), json.dumps(state)),
    )


def today() -> str:
    return datetime.now(UTC).date().isoformat()


# --- one setup per check: returns the task body that fails that check only ---------

Setup = Callable[[Env], Awaitable[dict[str, Any]]]


async def _title(env: Env) -> dict[str, Any]:
    return {"title": "x" * 201}


async def _description(env: Env) -> dict[str, Any]:
    return {"description": "word " * 4001}


async def _priority(env: Env) -> dict[str, Any]:
    return {"priority": "critical"}


async def _due(env: Env) -> dict[str, Any]:
    return {"due_at": "2001-01-01T00:00:00Z"}


async def _credentials(env: Env) -> dict[str, Any]:
    return {"description": f"Deploy with the token {GITHUB_TOKEN} please"}


async def _agent_exists(env: Env) -> dict[str, Any]:
    return {"agent_id": 4242}


async def _agent_active(env: Env) -> dict[str, Any]:
    paused = await env.client.post(f"/api/agents/{env.agent['id']}/pause", headers=env.admin)
    assert paused.status_code == 200, paused.text
    return {}


async def _agent_tools(env: Env) -> dict[str, Any]:
    return {"required_tools": ["web_fetch"]}


async def _agent_shell(env: Env) -> dict[str, Any]:
    return {"needs_shell": True}


async def _agent_quota(env: Env) -> dict[str, Any]:
    execute(
        env.ctx,
        "INSERT INTO usage_ledger (agent_id, day, tokens, cost_usd, created_at)"
        " VALUES (?, ?, ?, 0, ?)",
        (env.agent["id"], today(), env.agent["quotas"]["tokens_per_day"], now_iso()),
    )
    return {}


async def _circuit(env: Env) -> dict[str, Any]:
    heartbeat(env.ctx, {"circuits": {"demo": {"state": "open", "consecutive_failures": 5}}})
    return {}


async def _mission_exists(env: Env) -> dict[str, Any]:
    return {"mission_id": 777, "mission_step": 1}


async def _mission_approved(env: Env) -> dict[str, Any]:
    proposed = await env.client.post(
        "/api/missions",
        json={
            "title": "m",
            "goal": "g",
            "steps": [{"title": "s", "agent_id": env.agent["id"]}],
        },
        headers=env.operate,
    )
    assert proposed.status_code == 201, proposed.text
    return {"mission_id": proposed.json()["id"], "mission_step": 1}


async def _mission_bounds(env: Env) -> dict[str, Any]:
    mission = await approved_mission(
        env.app, env.client, env.ctx, env.operate, [env.agent["id"]], bounds={"steps": 1}
    )
    await new_task(
        env.client, env.operate, agent_id=env.agent["id"], mission_id=mission["id"], mission_step=1
    )
    return {"mission_id": mission["id"], "mission_step": 1}


async def _mission_step(env: Env) -> dict[str, Any]:
    mission = await approved_mission(env.app, env.client, env.ctx, env.operate, [env.agent["id"]])
    return {"mission_id": mission["id"], "mission_step": 2}


async def _project(env: Env) -> dict[str, Any]:
    return {"project_id": 31337}


async def _deps_exist(env: Env) -> dict[str, Any]:
    return {"depends_on": [9999]}


async def _deps_viable(env: Env) -> dict[str, Any]:
    first = await new_task(env.client, env.operate, agent_id=env.agent["id"])
    cancelled = await env.client.post(f"/api/tasks/{first['id']}/cancel", headers=env.operate)
    assert cancelled.status_code == 200
    return {"depends_on": [first["id"]]}


async def _deps_acyclic(env: Env) -> dict[str, Any]:
    a = await new_task(env.client, env.operate, agent_id=env.agent["id"], title="a")
    b = await new_task(
        env.client, env.operate, agent_id=env.agent["id"], title="b", depends_on=[a["id"]]
    )
    # A cycle can only come from outside the API; pre-flight still refuses to build on it.
    execute(
        env.ctx,
        "INSERT INTO task_dependencies (task_id, depends_on) VALUES (?, ?)",
        (a["id"], b["id"]),
    )
    return {"depends_on": [b["id"]]}


async def _idempotency(env: Env) -> dict[str, Any]:
    await new_task(env.client, env.operate, agent_id=env.agent["id"], idempotency_key="nightly-1")
    return {"idempotency_key": "nightly-1", "title": "Something else entirely"}


async def _review(env: Env) -> dict[str, Any]:
    # the review gate: never the agent doing the work (docs/missions.md)
    return {"review": {"agent_id": env.agent["id"]}}


CASES: dict[str, Setup] = {
    "title_length": _title,
    "description_length": _description,
    "priority_valid": _priority,
    "due_date_valid": _due,
    "no_credentials_in_text": _credentials,
    "agent_exists": _agent_exists,
    "agent_active": _agent_active,
    "agent_tools_allowed": _agent_tools,
    "agent_shell_allowed": _agent_shell,
    "agent_within_quota": _agent_quota,
    "runner_circuit_closed": _circuit,
    "mission_exists": _mission_exists,
    "mission_approved": _mission_approved,
    "mission_within_bounds": _mission_bounds,
    "mission_step_valid": _mission_step,
    "project_exists": _project,
    "dependencies_exist": _deps_exist,
    "dependencies_viable": _deps_viable,
    "dependencies_acyclic": _deps_acyclic,
    "idempotency_key_unique": _idempotency,
    "review_valid": _review,
}


def test_every_check_has_a_test_and_there_are_at_least_thirteen() -> None:
    assert set(CASES) == set(preflight.CHECKS)
    assert len(preflight.CHECKS) >= 13


@pytest.mark.parametrize("code", list(CASES))
async def test_each_check_refuses_the_task_on_its_own(env: Env, code: str) -> None:
    fields = {"agent_id": env.agent["id"], **await CASES[code](env)}
    before = domain_snapshot(env.ctx)
    refusals_before = count(env.ctx, "escalations", "kind = 'preflight_refused'")

    response = await post_task(env.client, env.operate, **fields)

    assert_error_shape(response, 422, "preflight_failed")
    details = response.json()["error"]["details"]
    assert [d["check"] for d in details] == [code], details
    assert all(set(d) == {"check", "field", "message"} and d["message"] for d in details)
    assert domain_snapshot(env.ctx) == before
    assert count(env.ctx, "escalations", "kind = 'preflight_refused'") == refusals_before + 1


async def test_every_failure_is_listed_together(env: Env) -> None:
    response = await post_task(
        env.client,
        env.operate,
        title="   ",
        description=f"{GITHUB_TOKEN} " + "y" * 20_000,
        agent_id=4242,
        priority="someday",
        due_at="not a date",
        mission_id=555,
        project_id=556,
        depends_on=[557, 558],
    )
    assert_error_shape(response, 422, "preflight_failed")
    details = response.json()["error"]["details"]
    assert {d["check"] for d in details} == {
        "title_length",
        "description_length",
        "priority_valid",
        "due_date_valid",
        "no_credentials_in_text",
        "agent_exists",
        "mission_exists",
        "mission_step_valid",
        "project_exists",
        "dependencies_exist",
    }
    fields = {d["check"]: d["field"] for d in details}
    assert fields["no_credentials_in_text"] == "description"
    assert fields["agent_exists"] == "agent_id"
    assert GITHUB_TOKEN not in response.text


async def test_agent_checks_are_all_reported_for_one_agent(env: Env) -> None:
    await env.client.post(f"/api/agents/{env.agent['id']}/pause", headers=env.admin)
    heartbeat(env.ctx, {"circuits": {"demo": {"state": "open"}}})
    response = await post_task(
        env.client,
        env.operate,
        agent_id=env.agent["id"],
        required_tools=["web_search"],
        needs_shell=True,
    )
    assert_error_shape(response, 422, "preflight_failed")
    assert [d["check"] for d in response.json()["error"]["details"]] == [
        "agent_active",
        "agent_tools_allowed",
        "agent_shell_allowed",
        "runner_circuit_closed",
    ]


async def test_a_refusal_is_audited_evented_and_escalated_but_stores_no_task(env: Env) -> None:
    response = await post_task(
        env.client,
        env.operate,
        agent_id=env.agent["id"],
        description=f"the key is {GITHUB_TOKEN}",
        needs_shell=True,
    )
    assert_error_shape(response, 422, "preflight_failed")
    assert count(env.ctx, "tasks") == 0
    assert count(env.ctx, "conversations") == 0
    assert count(env.ctx, "task_dependencies") == 0
    assert events_of(env.ctx, "task.created") == []
    refused = events_of(env.ctx, "task.refused")
    assert len(refused) == 1
    assert json.loads(refused[0][1])["checks"] == ["agent_shell_allowed", "no_credentials_in_text"]
    audit = rows(
        env.ctx, "SELECT actor, outcome, summary FROM audit_log WHERE action = 'task.create'"
    )
    assert len(audit) == 1 and audit[0][1] == "refused"
    assert audit[0][0].startswith("token:")
    escalation = rows(
        env.ctx,
        "SELECT subject_type, reason, details, status FROM escalations"
        " WHERE kind = 'preflight_refused'",
    )
    assert len(escalation) == 1 and escalation[0][3] == "open"
    assert "agent_shell_allowed" in escalation[0][1]
    # The secret that caused the refusal is nowhere in the database.
    for table in ("audit_log", "events", "escalations", "notifications"):
        dump = json.dumps(rows(env.ctx, f"SELECT * FROM {table}"))
        assert GITHUB_TOKEN not in dump, table


@pytest.mark.parametrize(
    ("due_at", "ok"),
    [
        ("2000-01-01T00:00:00+00:00", False),
        ("tomorrow", False),
        ("2030-01-01T00:00:00", False),  # no timezone: ambiguous
        (iso(datetime.now(UTC) + timedelta(days=400)), False),
        (iso(datetime.now(UTC) + timedelta(days=2)), True),
        ((datetime.now(UTC) + timedelta(hours=5)).astimezone().isoformat(), True),
    ],
)
async def test_due_dates(env: Env, due_at: str, ok: bool) -> None:
    response = await post_task(env.client, env.operate, agent_id=env.agent["id"], due_at=due_at)
    if ok:
        assert response.status_code == 201, response.text
        assert response.json()["due_at"].endswith("Z")
    else:
        assert_error_shape(response, 422, "preflight_failed")
        assert response.json()["error"]["details"][0]["check"] == "due_date_valid"


@pytest.mark.parametrize(
    ("quota", "ledger"),
    [
        ("tokens_per_day", (1_000, 0.0)),
        ("cost_usd_per_day", (0, 2.5)),
    ],
)
async def test_quota_counts_todays_usage_only(
    env: Env, quota: str, ledger: tuple[int, float]
) -> None:
    agent = await make_agent(
        env.client,
        env.admin,
        name="frugal",
        quotas={"tokens_per_day": 1_000, "cost_usd_per_day": 2.5, "runs_per_day": 50},
    )
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    insert = (
        "INSERT INTO usage_ledger (agent_id, day, tokens, cost_usd, created_at)"
        " VALUES (?, ?, ?, ?, ?)"
    )
    execute(env.ctx, insert, (agent["id"], yesterday, *ledger, now_iso()))
    assert (await post_task(env.client, env.operate, agent_id=agent["id"])).status_code == 201
    execute(env.ctx, insert, (agent["id"], today(), *ledger, now_iso()))
    refused = await post_task(env.client, env.operate, agent_id=agent["id"], title="again")
    assert_error_shape(refused, 422, "preflight_failed")
    detail = refused.json()["error"]["details"][0]
    assert detail["check"] == "agent_within_quota", quota


async def test_quota_counts_todays_runs(env: Env) -> None:
    agent = await make_agent(
        env.client,
        env.admin,
        name="once",
        quotas={"tokens_per_day": 10_000, "cost_usd_per_day": 5, "runs_per_day": 1},
    )
    assert (await post_task(env.client, env.operate, agent_id=agent["id"])).status_code == 201
    refused = await post_task(env.client, env.operate, agent_id=agent["id"], title="twice")
    assert_error_shape(refused, 422, "preflight_failed")
    assert "runs 1/1" in refused.json()["error"]["details"][0]["message"]


async def test_circuit_state_from_heartbeats(env: Env) -> None:
    # another profile open, this one half open, a stale worker that saw it open: all accepted
    heartbeat(env.ctx, {"circuits": {"claude": {"state": "open"}}})
    heartbeat(env.ctx, {"circuits": {"demo": {"state": "half_open"}}})
    heartbeat(
        env.ctx,
        {"circuits": {"demo": {"state": "open"}}},
        seen_at=iso(datetime.now(UTC) - timedelta(hours=3)),
    )
    heartbeat(env.ctx, {"garbage": True})
    execute(
        env.ctx,
        "INSERT INTO worker_heartbeats (worker_id, pid, hostname, started_at, seen_at, state)"
        " VALUES ('bad', 1, 'pi', ?, ?, 'not json')",
        (now_iso(), now_iso()),
    )
    response = await post_task(env.client, env.operate, agent_id=env.agent["id"])
    assert response.status_code == 201, response.text


async def test_mission_spending_bound(env: Env) -> None:
    mission = await approved_mission(
        env.app, env.client, env.ctx, env.operate, [env.agent["id"]], bounds={"cost_usd": 1.0}
    )
    execute(
        env.ctx,
        "INSERT INTO usage_ledger (agent_id, mission_id, day, tokens, cost_usd, created_at)"
        " VALUES (?, ?, ?, 10, 1.0, ?)",
        (env.agent["id"], mission["id"], today(), now_iso()),
    )
    response = await post_task(
        env.client, env.operate, agent_id=env.agent["id"], mission_id=mission["id"], mission_step=1
    )
    assert_error_shape(response, 422, "preflight_failed")
    detail = response.json()["error"]["details"]
    assert [d["check"] for d in detail] == ["mission_within_bounds"]
    assert "cost 1.00/1.00" in detail[0]["message"]


async def test_mission_step_must_match_its_agent_and_mission(env: Env) -> None:
    other = await make_agent(env.client, env.admin, name="other")
    mission = await approved_mission(env.app, env.client, env.ctx, env.operate, [other["id"]])
    wrong_agent = await post_task(
        env.client, env.operate, agent_id=env.agent["id"], mission_id=mission["id"], mission_step=1
    )
    assert [d["check"] for d in wrong_agent.json()["error"]["details"]] == ["mission_step_valid"]
    no_step = await post_task(
        env.client, env.operate, agent_id=other["id"], mission_id=mission["id"]
    )
    assert [d["check"] for d in no_step.json()["error"]["details"]] == ["mission_step_valid"]
    no_mission = await post_task(env.client, env.operate, agent_id=other["id"], mission_step=1)
    assert [d["check"] for d in no_mission.json()["error"]["details"]] == ["mission_step_valid"]


async def test_shell_tool_counts_as_needing_a_shell(env: Env) -> None:
    tools_ok = await make_agent(env.client, env.admin, name="sheller", allowed_tools=["read_files"])
    response = await post_task(
        env.client, env.operate, agent_id=tools_ok["id"], required_tools=["shell"]
    )
    assert {d["check"] for d in response.json()["error"]["details"]} == {
        "agent_tools_allowed",
        "agent_shell_allowed",
    }
    shell_agent = await make_agent(
        env.client,
        env.admin,
        name="shelly",
        shell_access=True,
        allowed_tools=["shell", "read_files"],
    )
    accepted = await post_task(
        env.client, env.operate, agent_id=shell_agent["id"], required_tools=["shell", "read_files"]
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["needs_shell"] is True


async def test_project_that_exists_is_accepted(env: Env) -> None:
    project = await env.client.post("/api/projects", json={"name": "garden"}, headers=env.operate)
    assert project.status_code == 201, project.text
    response = await post_task(
        env.client, env.operate, agent_id=env.agent["id"], project_id=project.json()["id"]
    )
    assert response.status_code == 201, response.text
