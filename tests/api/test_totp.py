"""The optional second factor (app/auth/totp.py) and the step-up (app/auth/step_up.py),
against the real app and a real SQLite file. Codes come from pyotp, as a phone's
authenticator app makes them."""

from __future__ import annotations

import json

import httpx
from fastapi import FastAPI

from app.core.context import AppContext
from app.security.principal import Scope
from app.support.collect import database_facts
from tests.support.api import ADMIN_PASSWORD, assert_error_shape
from tests.support.tasks import add_user, session_client
from tests.support.totp import code as totp_code


async def enrol(http: httpx.AsyncClient) -> tuple[str, list[str]]:
    """Step up, enrol and confirm; the secret and the recovery codes."""
    assert (
        await http.post("/api/auth/step-up", json={"password": ADMIN_PASSWORD})
    ).status_code == 204
    made = await http.post("/api/auth/totp/enrol")
    assert made.status_code == 200, made.text
    secret = str(made.json()["secret"])
    assert made.json()["qr_svg"].startswith("<svg") and "<script" not in made.json()["qr_svg"]
    confirmed = await http.post("/api/auth/totp/confirm", json={"code": totp_code(secret)})
    assert confirmed.status_code == 200, confirmed.text
    return secret, list(confirmed.json()["recovery_codes"])


async def log_in(app: FastAPI, username: str, code: str | None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        body = {"username": username, "password": ADMIN_PASSWORD}
        if code is not None:
            body["code"] = code
        return await http.post("/api/auth/login", json=body)


async def test_enrolment_needs_a_step_up_and_a_matching_code(app: FastAPI, ctx: AppContext) -> None:
    await add_user(ctx, "tess", Scope.ADMIN)
    async with session_client(app, "tess") as tess:
        without = await tess.post("/api/auth/totp/enrol")
        assert_error_shape(without, 403, "step_up_required")
        assert (
            await tess.post("/api/auth/step-up", json={"password": ADMIN_PASSWORD})
        ).status_code == 204
        made = await tess.post("/api/auth/totp/enrol")
        secret = made.json()["secret"]
        wrong = await tess.post("/api/auth/totp/confirm", json={"code": "12345x"})
        assert_error_shape(wrong, 422, "invalid_second_factor")
        assert wrong.json()["error"]["details"][0]["loc"] == ["body", "code"]
        assert (await tess.get("/api/auth/totp")).json() == {
            "enrolled": False,
            "recovery_codes_left": 0,
        }
        ok = await tess.post("/api/auth/totp/confirm", json={"code": totp_code(secret)})
        assert ok.status_code == 200, ok.text
        assert len(ok.json()["recovery_codes"]) == 10
        assert (await tess.get("/api/auth/totp")).json() == {
            "enrolled": True,
            "recovery_codes_left": 10,
        }
    # never stored or audited in the clear
    row = await ctx.db.fetch_one("SELECT secret_sealed FROM totp_credentials")
    assert row is not None and secret not in str(row["secret_sealed"])
    audit = await ctx.db.fetch_all("SELECT summary FROM audit_log")
    assert all(secret not in str(r["summary"]) for r in audit)
    hashes = await ctx.db.fetch_all("SELECT code_hash FROM totp_recovery_codes")
    assert len(hashes) == 10 and all(str(h["code_hash"]).startswith("$argon2id$") for h in hashes)


async def test_login_needs_the_code_once_enrolled_and_refuses_a_replay(
    app: FastAPI, ctx: AppContext
) -> None:
    await add_user(ctx, "tess", Scope.ADMIN)
    async with session_client(app, "tess") as tess:
        secret, _ = await enrol(tess)
    assert_error_shape(await log_in(app, "tess", None), 401, "second_factor_required")
    assert_error_shape(
        await log_in(app, "tess", "000000" if totp_code(secret, 1) != "000000" else "111111"),
        401,
        "invalid_second_factor",
    )
    fresh = totp_code(secret, 1)
    assert (await log_in(app, "tess", fresh)).status_code == 200
    replay = await log_in(app, "tess", fresh)
    assert_error_shape(replay, 401, "invalid_second_factor")
    # the code that confirmed the enrolment (an earlier step) is no good either
    assert_error_shape(await log_in(app, "tess", totp_code(secret)), 401, "invalid_second_factor")


async def test_a_recovery_code_works_once(app: FastAPI, ctx: AppContext) -> None:
    await add_user(ctx, "tess", Scope.ADMIN)
    async with session_client(app, "tess") as tess:
        _, recovery = await enrol(tess)
    assert (await log_in(app, "tess", recovery[0].upper())).status_code == 200
    assert_error_shape(await log_in(app, "tess", recovery[0]), 401, "invalid_second_factor")
    used = await ctx.db.fetch_one(
        "SELECT count(*) AS n FROM totp_recovery_codes WHERE used_at IS NOT NULL"
    )
    assert used is not None and used["n"] == 1


async def test_wrong_codes_lock_out_like_wrong_passwords(app: FastAPI, ctx: AppContext) -> None:
    await add_user(ctx, "tess", Scope.ADMIN)
    async with session_client(app, "tess") as tess:
        secret, _ = await enrol(tess)
    wrong = "000000" if totp_code(secret, 1) != "000000" else "111111"
    for _ in range(ctx.settings.login_failures_before_lockout):
        assert_error_shape(await log_in(app, "tess", wrong), 401, "invalid_second_factor")
    locked = await log_in(app, "tess", totp_code(secret, 1))
    assert_error_shape(locked, 429, "login_locked")
    assert "Retry-After" in locked.headers


async def test_step_up_failures_lock_out_and_tokens_never_step_up(
    app: FastAPI, ctx: AppContext, admin_headers: dict[str, str], client: httpx.AsyncClient
) -> None:
    await add_user(ctx, "tess", Scope.ADMIN)
    async with session_client(app, "tess") as tess:
        for _ in range(ctx.settings.login_failures_before_lockout):
            wrong = await tess.post("/api/auth/step-up", json={"password": "not the password!"})
            assert_error_shape(wrong, 422, "wrong_password")
        locked = await tess.post("/api/auth/step-up", json={"password": ADMIN_PASSWORD})
        assert_error_shape(locked, 429, "login_locked")
    token = await client.post(
        "/api/auth/step-up", json={"password": ADMIN_PASSWORD}, headers=admin_headers
    )
    assert_error_shape(token, 403, "step_up_needs_session")
    failed = await ctx.db.fetch_all(
        "SELECT count(*) AS n FROM audit_log WHERE action = 'auth.step_up_failed'"
    )
    assert failed[0]["n"] == ctx.settings.login_failures_before_lockout


async def test_step_up_asks_for_the_code_when_enrolled(app: FastAPI, ctx: AppContext) -> None:
    await add_user(ctx, "tess", Scope.ADMIN)
    async with session_client(app, "tess") as tess:
        secret, _ = await enrol(tess)
        bare = await tess.post("/api/auth/step-up", json={"password": ADMIN_PASSWORD})
        assert_error_shape(bare, 422, "second_factor_required")
        ok = await tess.post(
            "/api/auth/step-up", json={"password": ADMIN_PASSWORD, "code": totp_code(secret, 1)}
        )
        assert ok.status_code == 204, ok.text


async def test_turning_the_factor_off_needs_password_and_code(
    app: FastAPI, ctx: AppContext
) -> None:
    await add_user(ctx, "tess", Scope.ADMIN)
    async with session_client(app, "tess") as tess:
        _, recovery = await enrol(tess)
        no_code = await tess.post("/api/auth/totp/disable", json={"password": ADMIN_PASSWORD})
        assert_error_shape(no_code, 422, "second_factor_required")
        no_password = await tess.post("/api/auth/totp/disable", json={"code": recovery[0]})
        assert no_password.status_code == 422
        assert (await tess.get("/api/auth/totp")).json()["enrolled"] is True
        off = await tess.post(
            "/api/auth/totp/disable", json={"password": ADMIN_PASSWORD, "code": recovery[1]}
        )
        assert off.status_code == 204, off.text
        assert (await tess.get("/api/auth/totp")).json()["enrolled"] is False
    assert (await log_in(app, "tess", None)).status_code == 200


async def test_a_token_cannot_manage_a_second_factor(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    status = await client.get("/api/auth/totp", headers=admin_headers)
    assert_error_shape(status, 403, "not_a_session")
    enrol_ = await client.post("/api/auth/totp/enrol", headers=admin_headers)
    assert enrol_.status_code == 403


async def test_the_support_bundle_s_database_facts_leave_the_secret_out(
    app: FastAPI, ctx: AppContext
) -> None:
    await add_user(ctx, "tess", Scope.ADMIN)
    async with session_client(app, "tess") as tess:
        secret, recovery = await enrol(tess)
    facts = json.dumps(database_facts(ctx.settings.database_path))
    assert secret not in facts and not any(code in facts for code in recovery)
    for table in ("totp_credentials", "totp_recovery_codes"):
        stored = json.dumps([tuple(r) for r in await ctx.db.fetch_all(f"SELECT * FROM {table}")])
        assert secret not in stored and not any(code in stored for code in recovery)
