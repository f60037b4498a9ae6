"""Mission lifecycle and approval: only a human who did not propose it approves;
illegal transitions are 409; tasks move a mission through running to its end."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.clock import now_iso
from app.core.context import AppContext
from app.missions import service as missions
from app.missions.schemas import MissionStatus
from app.security.principal import Scope
from app.tasks import service as tasks
from app.tasks.schemas import TaskStatus
from tests.support.api import TokenFactory, assert_error_shape, bearer, login
from tests.support.tasks import (
    GITHUB_TOKEN,
    add_user,
    approved_mission,
    count,
    events_of,
    execute,
    make_agent,
    mission_body,
    new_task,
    operate_headers,
    rows,
    session_client,
)


@pytest.fixture
async def operate(make_token: TokenFactory) -> dict[str, str]:
    return await operate_headers(make_token)


@pytest.fixture
async def agent(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> dict[str, Any]:
    return await make_agent(client, admin_headers)


async def propose(
    client: httpx.AsyncClient, headers: dict[str, str], agent_ids: list[int]
) -> dict[str, Any]:
    response = await client.post("/api/missions", json=mission_body(agent_ids), headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def security_alerts(ctx: AppContext) -> list[str]:
    return [r[0] for r in rows(ctx, "SELECT title FROM notifications WHERE category = 'security'")]


def status_of(ctx: AppContext, mission_id: int) -> str:
    return str(rows(ctx, "SELECT status FROM missions WHERE id = ?", (mission_id,))[0][0])


@pytest.mark.parametrize("scope", [Scope.OPERATE, Scope.ADMIN])
async def test_an_api_token_cannot_approve(
    client: httpx.AsyncClient,
    ctx: AppContext,
    make_token: TokenFactory,
    operate: dict[str, str],
    agent: dict[str, Any],
    scope: Scope,
) -> None:
    mission = await propose(client, operate, [agent["id"]])
    automation = bearer(await make_token(scope))
    response = await client.post(f"/api/missions/{mission['id']}/approve", headers=automation)
    assert_error_shape(response, 403, "approval_needs_human")
    assert status_of(ctx, mission["id"]) == "proposed"
    audit = rows(ctx, "SELECT outcome, summary FROM audit_log WHERE action = 'mission.approve'")
    assert audit and audit[0][0] == "refused"
    assert json.loads(audit[0][1]) == {"reason": "approval_needs_human"}
    assert security_alerts(ctx) == ["Refused: mission.approve"]
    assert events_of(ctx, "mission.approved") == []


async def test_the_proposer_cannot_approve_but_another_operator_can(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, agent: dict[str, Any]
) -> None:
    await add_user(ctx, "bob")
    await add_user(ctx, "carol")
    async with session_client(app, "bob") as bob:
        proposed = await bob.post("/api/missions", json=mission_body([agent["id"]]))
        assert proposed.status_code == 201, proposed.text
        mission = proposed.json()
        assert mission["proposed_by"] == "user:bob"
        own = await bob.post(f"/api/missions/{mission['id']}/approve", json={"comment": "lgtm"})
        assert_error_shape(own, 403, "self_approval")
    assert status_of(ctx, mission["id"]) == "proposed"
    assert rows(ctx, "SELECT actor, outcome FROM audit_log WHERE action = 'mission.approve'") == [
        ("user:bob", "refused")
    ]
    assert security_alerts(ctx) == ["Refused: mission.approve"]

    async with session_client(app, "carol") as carol:
        approved = await carol.post(
            f"/api/missions/{mission['id']}/approve", json={"comment": "go ahead"}
        )
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved" and body["decided_by"] == "user:carol"
    assert body["decision_comment"] == "go ahead" and body["version"] == 2
    assert [e[0] for e in events_of(ctx, "mission.approved")] == [mission["id"]]
    titles = [r[0] for r in rows(ctx, "SELECT title FROM notifications WHERE category='mission'")]
    assert titles == [
        "Mission waiting for approval: Tidy the garden",
        "Mission approved: Tidy the garden",
    ]
    links = rows(ctx, "SELECT link FROM notifications WHERE category='mission' ORDER BY id")
    assert links[0][0] == f"/ui/missions/{mission['id']}#h-decide"  # one tap to the decision


async def test_the_creator_of_the_proposing_token_cannot_approve(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, agent: dict[str, Any]
) -> None:
    await add_user(ctx, "dave", Scope.ADMIN)
    await add_user(ctx, "frank", Scope.ADMIN)  # two admins: the two-person mode applies
    async with session_client(app, "dave") as dave:
        created = await dave.post("/api/tokens", json={"name": "bot", "scope": "operate"})
        assert created.status_code == 201, created.text
        bot = bearer(created.json()["token"])
        mission = await propose(client, bot, [agent["id"]])
        refused = await dave.post(f"/api/missions/{mission['id']}/approve")
        assert_error_shape(refused, 403, "self_approval")
    assert status_of(ctx, mission["id"]) == "proposed"


async def test_a_read_only_human_cannot_approve(
    app: FastAPI,
    client: httpx.AsyncClient,
    ctx: AppContext,
    operate: dict[str, str],
    agent: dict[str, Any],
) -> None:
    mission = await propose(client, operate, [agent["id"]])
    await add_user(ctx, "erin", Scope.READ)
    async with session_client(app, "erin") as erin:
        refused = await erin.post(f"/api/missions/{mission['id']}/approve")
    assert_error_shape(refused, 403, "insufficient_scope")
    assert status_of(ctx, mission["id"]) == "proposed"


async def test_a_session_without_csrf_cannot_approve(
    client: httpx.AsyncClient,
    ctx: AppContext,
    operate: dict[str, str],
    agent: dict[str, Any],
    admin_user: str,
) -> None:
    mission = await propose(client, operate, [agent["id"]])
    await login(client, admin_user)
    refused = await client.post(f"/api/missions/{mission['id']}/approve")
    assert_error_shape(refused, 403, "csrf_failed")
    assert status_of(ctx, mission["id"]) == "proposed"


async def test_illegal_transitions_are_409(
    app: FastAPI,
    client: httpx.AsyncClient,
    ctx: AppContext,
    operate: dict[str, str],
    agent: dict[str, Any],
) -> None:
    await add_user(ctx, "frank")
    approved = await approved_mission(app, client, ctx, operate, [agent["id"]])
    rejected = await propose(client, operate, [agent["id"]])
    reject = await client.post(
        f"/api/missions/{rejected['id']}/reject", json={"comment": "too vague"}, headers=operate
    )
    assert reject.status_code == 200 and reject.json()["status"] == "rejected"
    assert reject.json()["decided_by"].startswith("token:")
    async with session_client(app, "frank") as frank:
        for mission_id, action in [
            (approved["id"], "approve"),
            (rejected["id"], "approve"),
        ]:
            response = await frank.post(f"/api/missions/{mission_id}/{action}")
            assert_error_shape(response, 409, "invalid_transition")
    for mission_id, action in [
        (approved["id"], "reject"),
        (rejected["id"], "cancel"),
        (rejected["id"], "reject"),
    ]:
        response = await client.post(f"/api/missions/{mission_id}/{action}", headers=operate)
        assert_error_shape(response, 409, "invalid_transition")
        assert response.json()["error"]["details"]["to"] in {"rejected", "cancelled"}
    assert status_of(ctx, approved["id"]) == "approved"
    assert status_of(ctx, rejected["id"]) == "rejected"
    missing = await client.post("/api/missions/4242/cancel", headers=operate)
    assert_error_shape(missing, 404, "not_found")
    with pytest.raises(ValueError):
        await missions.end_mission(
            ctx, approved["id"], MissionStatus.CANCELLED, actor="w", client="w", reason="x"
        )


async def test_decisions_check_the_version_and_redact_comments(
    client: httpx.AsyncClient, ctx: AppContext, operate: dict[str, str], agent: dict[str, Any]
) -> None:
    mission = await propose(client, operate, [agent["id"]])
    stale = await client.post(
        f"/api/missions/{mission['id']}/cancel", json={"version": 7}, headers=operate
    )
    assert_error_shape(stale, 409, "conflict")
    unknown = await client.post(
        f"/api/missions/{mission['id']}/cancel", json={"force": True}, headers=operate
    )
    assert_error_shape(unknown, 422, "validation_failed")
    cancelled = await client.post(
        f"/api/missions/{mission['id']}/cancel",
        json={"version": 1, "comment": f"leaked {GITHUB_TOKEN}"},
        headers=operate,
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert "[REDACTED:github_token]" in cancelled.json()["decision_comment"]
    assert GITHUB_TOKEN not in json.dumps(rows(ctx, "SELECT * FROM missions"))


async def test_tasks_run_a_mission_to_success(
    app: FastAPI,
    client: httpx.AsyncClient,
    ctx: AppContext,
    operate: dict[str, str],
    agent: dict[str, Any],
    admin_headers: dict[str, str],
) -> None:
    helper = await make_agent(client, admin_headers, name="helper")
    mission = await approved_mission(app, client, ctx, operate, [agent["id"], helper["id"]])
    first = await new_task(
        client, operate, agent_id=agent["id"], mission_id=mission["id"], mission_step=1
    )
    assert status_of(ctx, mission["id"]) == "running"
    assert [e[0] for e in events_of(ctx, "mission.started")] == [mission["id"]]
    second = await new_task(
        client,
        operate,
        agent_id=helper["id"],
        mission_id=mission["id"],
        mission_step=2,
        depends_on=[first["id"]],
    )
    for task in (first, second):
        await tasks.change_task_status(
            ctx, task["id"], TaskStatus.IN_PROGRESS, actor="w", client="w"
        )
        await tasks.change_task_status(ctx, task["id"], TaskStatus.SUCCEEDED, actor="w", client="w")
    assert status_of(ctx, mission["id"]) == "succeeded"
    assert [e[0] for e in events_of(ctx, "mission.succeeded")] == [mission["id"]]
    execute(
        ctx,
        "INSERT INTO usage_ledger (agent_id, mission_id, day, tokens, cost_usd, created_at)"
        " VALUES (?, ?, '2030-01-01', 1200, 0.75, ?)",
        (agent["id"], mission["id"], now_iso()),
    )
    detail = (await client.get(f"/api/missions/{mission['id']}", headers=operate)).json()
    assert detail["spent_tokens"] == 1200 and detail["spent_cost_usd"] == 0.75
    assert detail["tasks_created"] == 2
    listed = (await client.get("/api/missions?status=succeeded", headers=operate)).json()
    assert [m["id"] for m in listed["items"]] == [mission["id"]]


async def test_a_failed_task_fails_its_mission(
    app: FastAPI,
    client: httpx.AsyncClient,
    ctx: AppContext,
    operate: dict[str, str],
    agent: dict[str, Any],
) -> None:
    mission = await approved_mission(app, client, ctx, operate, [agent["id"]])
    task = await new_task(
        client, operate, agent_id=agent["id"], mission_id=mission["id"], mission_step=1
    )
    await tasks.change_task_status(ctx, task["id"], TaskStatus.IN_PROGRESS, actor="w", client="w")
    await tasks.change_task_status(ctx, task["id"], TaskStatus.FAILED, actor="w", client="w")
    assert status_of(ctx, mission["id"]) == "failed"
    refused = await client.post(f"/api/missions/{mission['id']}/cancel", headers=operate)
    assert_error_shape(refused, 409, "invalid_transition")


async def test_the_worker_can_end_a_running_mission(
    app: FastAPI,
    client: httpx.AsyncClient,
    ctx: AppContext,
    operate: dict[str, str],
    agent: dict[str, Any],
) -> None:
    mission = await approved_mission(app, client, ctx, operate, [agent["id"]])
    await new_task(client, operate, agent_id=agent["id"], mission_id=mission["id"], mission_step=1)
    view = await missions.end_mission(
        ctx,
        mission["id"],
        MissionStatus.FAILED,
        actor="worker",
        client="w",
        reason="token bound reached",
    )
    assert view.status is MissionStatus.FAILED
    assert count(ctx, "escalations", "kind = 'mission_failed'") == 1


async def test_cancelling_a_running_mission_cancels_its_open_tasks(
    app: FastAPI,
    client: httpx.AsyncClient,
    ctx: AppContext,
    operate: dict[str, str],
    agent: dict[str, Any],
) -> None:
    mission = await approved_mission(app, client, ctx, operate, [agent["id"], agent["id"]])
    first = await new_task(
        client, operate, agent_id=agent["id"], mission_id=mission["id"], mission_step=1
    )
    second = await new_task(
        client,
        operate,
        agent_id=agent["id"],
        mission_id=mission["id"],
        mission_step=2,
        depends_on=[first["id"]],
    )
    await tasks.change_task_status(ctx, first["id"], TaskStatus.IN_PROGRESS, actor="w", client="w")
    response = await client.post(f"/api/missions/{mission['id']}/cancel", headers=operate)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    statuses = rows(ctx, "SELECT id, status FROM tasks ORDER BY id")
    assert statuses == [(first["id"], "cancelled"), (second["id"], "cancelled")]
    assert count(ctx, "conversations", "status IN ('QUEUED', 'IN_PROGRESS')") == 0
    payload = json.loads(events_of(ctx, "mission.cancelled")[0][1])
    assert payload["tasks_cancelled"] == [first["id"], second["id"]]
    # a cancelled mission takes no more tasks
    late = await client.post(
        "/api/tasks",
        json={
            "title": "late",
            "agent_id": agent["id"],
            "mission_id": mission["id"],
            "mission_step": 1,
        },
        headers=operate,
    )
    assert [d["check"] for d in late.json()["error"]["details"]] == ["mission_approved"]


async def test_list_and_detail(
    client: httpx.AsyncClient,
    ctx: AppContext,
    operate: dict[str, str],
    agent: dict[str, Any],
    make_token: TokenFactory,
) -> None:
    ids = [(await propose(client, operate, [agent["id"]]))["id"] for _ in range(3)]
    await client.post(f"/api/missions/{ids[1]}/reject", headers=operate)
    reader = bearer(await make_token(Scope.READ))
    page = (await client.get("/api/missions?limit=2", headers=reader)).json()
    assert [m["id"] for m in page["items"]] == [ids[2], ids[1]] and page["next_offset"] == 2
    proposed = (await client.get("/api/missions?status=proposed", headers=reader)).json()
    assert {m["id"] for m in proposed["items"]} == {ids[0], ids[2]}
    assert_error_shape(await client.get("/api/missions?limit=201", headers=reader), 422)
    assert_error_shape(await client.get("/api/missions?status=done", headers=reader), 422)
    assert_error_shape(await client.get("/api/missions/999", headers=reader), 404)
    refused = await client.post("/api/missions", json=mission_body([agent["id"]]), headers=reader)
    assert_error_shape(refused, 403, "insufficient_scope")
    cancel = await client.post(f"/api/missions/{ids[0]}/cancel", headers=reader)
    assert_error_shape(cancel, 403, "insufficient_scope")
