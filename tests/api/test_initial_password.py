"""The first-run password: the UI asks its user to replace it, and replacing it
removes the file that holds it. Password rules are shown before anyone types, and
a refused password names its field and the rule."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from app.cli_first_run import first_run
from app.core.context import AppContext
from tests.support.api import ADMIN_PASSWORD, assert_error_shape, login

HTML = {"Accept": "text/html"}


async def test_the_generated_password_is_replaced_and_its_file_removed(
    app: FastAPI, client: httpx.AsyncClient, ctx: AppContext
) -> None:
    assert await first_run(ctx.db, ctx.settings) == 0
    password_file = ctx.settings.state_dir / "initial-admin-password"
    generated = password_file.read_text().strip()
    answer = await login(client, "admin", generated)
    assert answer.status_code == 200, answer.text
    csrf = {"X-CSRF-Token": answer.json()["csrf_token"]}

    dashboard = (await client.get("/ui/", headers=HTML)).text
    assert 'id="initial-password"' in dashboard
    assert str(password_file.absolute()) in dashboard and generated not in dashboard
    settings = (await client.get("/ui/settings", headers=HTML)).text
    assert "Use at least 12 characters" in settings  # the rules, before typing

    weak = await client.post(
        "/api/auth/password",
        json={"current_password": generated, "new_password": "short"},
        headers=csrf,
    )
    assert_error_shape(weak, 422, "weak_password")
    detail = weak.json()["error"]["details"][0]
    assert detail["loc"] == ["body", "new_password"] and "at least 12" in detail["message"]
    assert password_file.exists()

    changed = await client.post(
        "/api/auth/password",
        json={"current_password": generated, "new_password": ADMIN_PASSWORD},
        headers=csrf,
    )
    assert changed.status_code == 204, changed.text
    assert not password_file.exists()
    row = await ctx.db.fetch_one(
        "SELECT summary FROM audit_log WHERE action = 'user.password_changed'"
    )
    assert row is not None and "initial_password_file_removed" in row["summary"]
    assert (await login(client, "admin", ADMIN_PASSWORD)).status_code == 200
    assert 'id="initial-password"' not in (await client.get("/ui/", headers=HTML)).text


async def test_another_password_change_leaves_a_file_it_did_not_replace(
    client: httpx.AsyncClient, ctx: AppContext, admin_user: str
) -> None:
    password_file = ctx.settings.state_dir / "initial-admin-password"
    password_file.parent.mkdir(parents=True, exist_ok=True)
    password_file.write_text("something else entirely\n")
    csrf = {"X-CSRF-Token": (await login(client, admin_user)).json()["csrf_token"]}
    assert 'id="initial-password"' not in (await client.get("/ui/", headers=HTML)).text
    changed = await client.post(
        "/api/auth/password",
        json={"current_password": ADMIN_PASSWORD, "new_password": "another long password"},
        headers=csrf,
    )
    assert changed.status_code == 204
    assert password_file.exists()


async def test_a_new_user_s_weak_password_names_the_field(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    refused = await client.post(
        "/api/users", json={"username": "erin", "password": "tiny", "role": "read"},
        headers=admin_headers,
    )  # fmt: skip
    assert_error_shape(refused, 422, "weak_password")
    assert refused.json()["error"]["details"][0]["loc"] == ["body", "password"]


async def test_a_password_someone_was_given_is_asked_to_be_replaced(
    client: httpx.AsyncClient, admin_user: str
) -> None:
    """Users made by provisioning or by an admin have a password someone gave them:
    every page asks them to choose their own until they do."""
    csrf = {"X-CSRF-Token": (await login(client, admin_user)).json()["csrf_token"]}
    page = (await client.get("/ui/", headers=HTML)).text
    assert 'id="own-password"' in page and "/root/mission-control-admin-password" in page
    changed = await client.post(
        "/api/auth/password",
        json={"current_password": ADMIN_PASSWORD, "new_password": "my very own passphrase"},
        headers=csrf,
    )
    assert changed.status_code == 204
    await login(client, admin_user, "my very own passphrase")
    assert 'id="own-password"' not in (await client.get("/ui/", headers=HTML)).text
