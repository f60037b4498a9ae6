"""Step-up: a logged-in person proves again who they are before a sensitive act.

A stolen session cookie is not enough for what the step-up guards (a
one-owner self-approval, turning the second factor off, showing a new VPN
peer's configuration): the person types their password again, plus a code from
their authenticator app (or a recovery code) when they have enrolled one
(``app.auth.totp``). A success is recorded on the session row
(``sessions.step_up_at``) and counts as *fresh* for ``MC_STEP_UP_SECONDS``.
Failures count against the login lock-out (``app.auth.lockout``) and are
audited; API tokens can never step up.

Interface (everything another module needs):

* ``StepUpProof``: the request body part, ``{"password": ..., "code": ...}``.
* ``await step_up(ctx, caller, proof)``: check it and record the
  step-up (``POST /api/auth/step-up`` calls this; a form may send the proof
  with its own request and call it first).
* ``await is_fresh(ctx, principal)``: whether the session stepped up recently.
* ``await require_fresh(ctx, caller, action=..., target=...)``:
  403 ``step_up_required`` (audited) unless fresh.
* ``SteppedUp`` (``app.auth.stepped_up``): an ``Annotated`` dependency for a
  route that needs a browser session with a fresh step-up (403
  ``step_up_required`` otherwise), giving its ``Caller``. It lives apart so that the worker, which
  applies held approvals, never loads the web framework.
* ``await consume(conn, principal)``: use the step-up up (one act per step-up).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import aiosqlite
from pydantic import StringConstraints

from app.access.caller import Caller
from app.auth import lockout, store, totp
from app.auth.caller_audit import append_as, record_as
from app.auth.schemas import Password, StrictModel
from app.core.clock import now_iso, parse_iso, utcnow
from app.core.context import AppContext
from app.core.errors import ApiError
from app.core.ratelimit import RateLimiter
from app.security.passwords import verify_password
from app.security.principal import Principal

SecondFactorCode = Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)]


class StepUpProof(StrictModel):
    """Your password again, and a code from your authenticator app when enrolled."""

    password: Password
    code: SecondFactorCode | None = None


def _code_detail(message: str) -> list[dict[str, object]]:
    return [{"loc": ["body", "code"], "type": "second_factor", "message": message}]


def _not_a_session() -> ApiError:
    return ApiError(
        403,
        "step_up_needs_session",
        "a step-up is made by a person logged in to the web UI, never with an API token",
    )


async def step_up(ctx: AppContext, caller: Caller, proof: StepUpProof) -> None:
    """Check the password (and second factor when enrolled) of the session's user;
    record a fresh step-up on the session. 422 naming the wrong field (the session
    itself is fine, so never 401), 429 locked out, 403 for a token."""
    principal, client = caller.principal, caller.client
    if principal.kind != "session" or principal.session_id is None or principal.user_id is None:
        await record_as(ctx.db, caller, "auth.step_up", outcome="refused")
        raise _not_a_session()
    username = principal.name
    wait = await lockout.lockout_wait(ctx, username, True, client)
    if wait > 0:
        await record_as(ctx.db, caller, "auth.step_up_locked", outcome="refused")
        raise ApiError(
            429,
            "login_locked",
            "too many failed attempts; try again later",
            headers={"Retry-After": RateLimiter.retry_after_header(wait)},
        )
    user = await store.user_by_name(ctx.db, username)
    if user is None or not verify_password(str(user["password_hash"]), proof.password):
        await _failed(ctx, caller, "password")
        raise ApiError(
            422,
            "wrong_password",
            "the password is wrong",
            [
                {
                    "loc": ["body", "password"],
                    "type": "wrong_password",
                    "message": "the password is wrong: type your own password again",
                }
            ],
        )
    how = "password"
    if await totp.is_enrolled(ctx, principal.user_id):
        if not proof.code:
            raise ApiError(
                422,
                "second_factor_required",
                "enter the code from your authenticator app (or a recovery code)",
                _code_detail("enter the 6-digit code from your authenticator app"),
            )
        matched = await totp.check_code(ctx, principal.user_id, proof.code)
        if matched is None:
            await _failed(ctx, caller, "second_factor")
            raise ApiError(
                422,
                "invalid_second_factor",
                "the code is wrong or was already used",
                _code_detail("the code is wrong or was already used: wait for the next one"),
            )
        how = f"password+{matched}"
    lockout.succeeded(ctx, username, client)
    async with ctx.db.write() as conn:
        await conn.execute(
            "UPDATE sessions SET step_up_at = ? WHERE id = ?", (now_iso(), principal.session_id)
        )
        await append_as(conn, caller, "auth.step_up", summary={"with": how})


async def _failed(ctx: AppContext, caller: Caller, what: str) -> None:
    lockout.failed(ctx, caller.principal.name, caller.client)
    await record_as(
        ctx.db, caller, "auth.step_up_failed", outcome="refused", summary={"wrong": what}
    )


async def is_fresh(ctx: AppContext, principal: Principal) -> bool:
    """Whether this browser session stepped up within ``MC_STEP_UP_SECONDS``."""
    if principal.kind != "session" or principal.session_id is None:
        return False
    row = await ctx.db.fetch_one(
        "SELECT step_up_at FROM sessions WHERE id = ?", (principal.session_id,)
    )
    if row is None or row["step_up_at"] is None:
        return False
    limit = timedelta(seconds=ctx.settings.step_up_seconds)
    return utcnow() - parse_iso(str(row["step_up_at"])) <= limit


async def require_fresh(ctx: AppContext, caller: Caller, *, action: str, target: str) -> None:
    """403 ``step_up_required`` (audited) unless the session stepped up recently."""
    principal = caller.principal
    if await is_fresh(ctx, principal):
        return
    await record_as(
        ctx.db,
        caller,
        action,
        target=target,
        outcome="refused",
        summary={"reason": "step_up_required"},
    )
    if principal.kind != "session":
        raise _not_a_session()
    raise ApiError(
        403,
        "step_up_required",
        "confirm it is you: enter your password (and your authenticator code when you use"
        f" one) again; a step-up counts for {ctx.settings.step_up_seconds} seconds",
        [
            {
                "loc": ["body", "password"],
                "type": "step_up_required",
                "message": "enter your password again to confirm it is you",
            }
        ],
    )


async def consume(conn: aiosqlite.Connection, principal: Principal) -> None:
    """Use the session's step-up up: the next sensitive act needs a new one."""
    if principal.session_id is not None:
        await conn.execute(
            "UPDATE sessions SET step_up_at = NULL WHERE id = ?", (principal.session_id,)
        )
