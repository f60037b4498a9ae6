"""One-owner approval (app/approvals/gate.py): the only admin may approve their own
mission or shell rule, with a fresh step-up, held for the cooling-off period,
announced at once, vetoable by any admin; tokens never; two admins: two-person.

Time is not mocked: a test moves a hold's ``effective_at`` into the past in the
real database, as the clock would."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from app.core.context import AppContext
from app.runner.held_approvals import release_due
from app.security.principal import Scope
from tests.support.api import ADMIN_PASSWORD, assert_error_shape, bearer
from tests.support.rules import create_rule, create_shell_agent, task_rule
from tests.support.tasks import add_user, make_agent, mission_body, session_client


async def propose(http: httpx.AsyncClient, agent_id: int) -> int:
    response = await http.post("/api/missions", json=mission_body([agent_id]))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def status_of(ctx: AppContext, mission_id: int) -> str:
    row = await ctx.db.fetch_one("SELECT status FROM missions WHERE id = ?", (mission_id,))
    assert row is not None
    return str(row["status"])


async def security_titles(ctx: AppContext) -> list[str]:
    rows = await ctx.db.fetch_all(
        "SELECT title FROM notifications WHERE category = 'security' ORDER BY id"
    )
    return [str(r["title"]) for r in rows]


async def refused(ctx: AppContext, action: str) -> list[tuple[str, str]]:
    rows = await ctx.db.fetch_all(
        "SELECT actor, summary FROM audit_log WHERE action = ? AND outcome = 'refused'",
        (action,),
    )
    return [(str(r["actor"]), str(r["summary"])) for r in rows]


async def cooling_off_over(ctx: AppContext) -> None:
    """What the clock does after MC_APPROVAL_COOLING_OFF_SECONDS."""
    async with ctx.db.write() as conn:
        await conn.execute(
            "UPDATE held_approvals SET effective_at = '2000-01-01T00:00:00.000000Z'"
            " WHERE state = 'held'"
        )


async def test_the_only_admin_approves_their_own_mission_after_step_up_and_cooling_off(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    agent: dict[str, Any] = await make_agent(client, admin_headers)
    await add_user(ctx, "olive", Scope.ADMIN)
    async with session_client(app, "olive") as olive:
        mission = await propose(olive, agent["id"])
        url = f"/api/missions/{mission}"
        mode = (await olive.get(f"{url}/approval")).json()
        assert mode["mode"] == "one_owner" and mode["admins"] == 1 and mode["hold"] is None
        assert "only one admin" in mode["why"]

        # without a step-up: refused and audited, nothing held
        bare = await olive.post(f"{url}/approve", json={})
        assert_error_shape(bare, 403, "step_up_required")
        assert await refused(ctx, "mission.approve") == [
            ("user:olive", '{"reason":"step_up_required"}')
        ]
        wrong = await olive.post(f"{url}/approve", json={"password": "not my password at all"})
        assert_error_shape(wrong, 422, "wrong_password")
        assert wrong.json()["error"]["details"][0]["loc"] == ["body", "password"]

        held = await olive.post(f"{url}/approve", json={"password": ADMIN_PASSWORD})
        assert held.status_code == 202, held.text
        assert held.json()["status"] == "proposed"
        assert "Self-approval held: mission Tidy the garden" in await security_titles(ctx)
        hold = (await olive.get(f"{url}/approval")).json()["hold"]
        assert hold["state"] == "held" and hold["approver"] == "user:olive"
        # the step-up was used up: approving again needs a new one (and one is held)
        again = await olive.post(f"{url}/approve", json={"password": ADMIN_PASSWORD})
        assert_error_shape(again, 409, "approval_held")

    assert await release_due(ctx) == 0  # not yet
    assert await status_of(ctx, mission) == "proposed"
    await cooling_off_over(ctx)
    assert await release_due(ctx) == 1
    assert await status_of(ctx, mission) == "approved"
    row = await ctx.db.fetch_one("SELECT decided_by FROM missions WHERE id = ?", (mission,))
    assert row is not None and row["decided_by"] == "user:olive"
    assert await release_due(ctx) == 0  # exactly once


async def test_any_admin_vetoes_a_held_approval(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    agent: dict[str, Any] = await make_agent(client, admin_headers)
    await add_user(ctx, "olive", Scope.ADMIN)
    async with session_client(app, "olive") as olive:
        mission = await propose(olive, agent["id"])
        url = f"/api/missions/{mission}"
        held = await olive.post(f"{url}/approve", json={"password": ADMIN_PASSWORD})
        assert held.status_code == 202, held.text
        vetoed = await olive.post(f"{url}/veto", json={"comment": "not me"})
        assert vetoed.status_code == 200, vetoed.text
        assert (await olive.get(f"{url}/approval")).json()["hold"]["state"] == "vetoed"
        nothing = await olive.post(f"{url}/veto", json={})
        assert_error_shape(nothing, 409, "nothing_held")
        # the hold used up the step-up: approving again after the veto needs a new one
        bare = await olive.post(f"{url}/approve", json={})
        assert_error_shape(bare, 403, "step_up_required")
    assert "Self-approval vetoed: mission Tidy the garden" in await security_titles(ctx)
    await cooling_off_over(ctx)
    assert await release_due(ctx) == 0
    assert await status_of(ctx, mission) == "proposed"


async def test_a_hold_on_a_mission_rejected_meanwhile_comes_to_nothing(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    agent: dict[str, Any] = await make_agent(client, admin_headers)
    await add_user(ctx, "olive", Scope.ADMIN)
    async with session_client(app, "olive") as olive:
        mission = await propose(olive, agent["id"])
        url = f"/api/missions/{mission}"
        assert (
            await olive.post(f"{url}/approve", json={"password": ADMIN_PASSWORD})
        ).status_code == 202
        assert (await olive.post(f"{url}/reject", json={})).status_code == 200
    await cooling_off_over(ctx)
    assert await release_due(ctx) == 0
    assert await status_of(ctx, mission) == "rejected"
    row = await ctx.db.fetch_one("SELECT state FROM held_approvals")
    assert row is not None and row["state"] == "void"


async def test_a_token_never_self_approves_even_with_the_password(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    agent: dict[str, Any] = await make_agent(client, admin_headers)
    await add_user(ctx, "olive", Scope.ADMIN)
    async with session_client(app, "olive") as olive:
        made = await olive.post("/api/tokens", json={"name": "mine", "scope": "admin"})
        assert made.status_code == 201, made.text
        mission = await propose(olive, agent["id"])
    token = bearer(made.json()["token"])
    response = await client.post(
        f"/api/missions/{mission}/approve", json={"password": ADMIN_PASSWORD}, headers=token
    )
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] in {"step_up_needs_session", "approval_needs_human"}
    bare = await client.post(f"/api/missions/{mission}/approve", json={}, headers=token)
    assert_error_shape(bare, 403, "approval_needs_human")
    step = await client.post("/api/auth/step-up", json={"password": ADMIN_PASSWORD}, headers=token)
    assert_error_shape(step, 403, "step_up_needs_session")
    assert await status_of(ctx, mission) == "proposed"
    actors = [a for a, _ in await refused(ctx, "mission.approve")]
    assert actors and all(a.startswith("token:") for a in actors)
    assert await ctx.db.fetch_one("SELECT 1 FROM held_approvals") is None


async def test_two_admins_keep_the_two_person_rule(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    agent: dict[str, Any] = await make_agent(client, admin_headers)
    await add_user(ctx, "olive", Scope.ADMIN)
    await add_user(ctx, "pat", Scope.ADMIN)
    async with session_client(app, "olive") as olive:
        mission = await propose(olive, agent["id"])
        url = f"/api/missions/{mission}"
        mode = (await olive.get(f"{url}/approval")).json()
        assert mode["mode"] == "two_person" and mode["admins"] == 2
        own = await olive.post(f"{url}/approve", json={"password": ADMIN_PASSWORD})
        assert_error_shape(own, 403, "self_approval")
    async with session_client(app, "pat") as pat:
        other = await pat.post(f"{url}/approve", json={})
        assert other.status_code == 200, other.text
    assert await status_of(ctx, mission) == "approved"


async def test_an_operator_never_approves_their_own_mission(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    agent: dict[str, Any] = await make_agent(client, admin_headers)
    await add_user(ctx, "olive", Scope.ADMIN)
    await add_user(ctx, "oscar", Scope.OPERATE)
    async with session_client(app, "oscar") as oscar:
        mission = await propose(oscar, agent["id"])
        own = await oscar.post(
            f"/api/missions/{mission}/approve", json={"password": ADMIN_PASSWORD}
        )
        assert_error_shape(own, 403, "self_approval")
    assert await ctx.db.fetch_one("SELECT 1 FROM held_approvals") is None


async def test_the_only_admin_approves_their_own_shell_rule_held(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    shell = await create_shell_agent(client, admin_headers)
    await add_user(ctx, "olive", Scope.ADMIN)
    async with session_client(app, "olive") as olive:
        rule = await create_rule(olive, {}, task_rule(shell["id"]))
        url = f"/api/rules/{rule['id']}"
        bare = await olive.post(f"{url}/approve", json={"version": 1})
        assert_error_shape(bare, 403, "step_up_required")
        step = await olive.post("/api/auth/step-up", json={"password": ADMIN_PASSWORD})
        assert step.status_code == 204, step.text
        held = await olive.post(f"{url}/approve", json={"version": 1})
        assert held.status_code == 202, held.text
        assert held.json()["approval"] == "pending"
        status = (await olive.get(f"{url}/approval")).json()
        assert status["mode"] == "one_owner" and status["hold"]["state"] == "held"
    assert f"Self-approval held: rule {rule['name']}" in await security_titles(ctx)
    await cooling_off_over(ctx)
    assert await release_due(ctx) == 1
    row = await ctx.db.fetch_one("SELECT approval, approved_by, enabled FROM rules")
    assert row is not None
    assert (row["approval"], row["approved_by"], row["enabled"]) == ("approved", "user:olive", 0)


async def test_a_rule_changed_during_its_hold_is_not_approved(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    shell = await create_shell_agent(client, admin_headers)
    await add_user(ctx, "olive", Scope.ADMIN)
    async with session_client(app, "olive") as olive:
        rule = await create_rule(olive, {}, task_rule(shell["id"]))
        url = f"/api/rules/{rule['id']}"
        held = await olive.post(f"{url}/approve", json={"version": 1, "password": ADMIN_PASSWORD})
        assert held.status_code == 202, held.text
        then = task_rule(shell["id"])["then"]
        then[0]["description"] = "Something else entirely."
        changed = await olive.patch(url, json={"version": 1, "then": then})
        assert changed.status_code == 200, changed.text
    await cooling_off_over(ctx)
    assert await release_due(ctx) == 0
    row = await ctx.db.fetch_one("SELECT approval FROM rules")
    assert row is not None and row["approval"] == "pending"
