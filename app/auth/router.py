"""Login, logout and the caller's own session and password."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import APIRouter, Request, Response

from app.access import credentials
from app.access.caller import AuthenticatedCaller
from app.access.dependencies import SESSION_COOKIE, Authenticated, client_address, session_hash
from app.auth import service, store, totp
from app.auth.lockout import failed, lockout_wait
from app.auth.schemas import LoginRequest, PasswordChange, SessionInfo
from app.auth.sessions import clear_session_cookie, open_session, set_session_cookie
from app.auth.step_up import StepUpProof, step_up
from app.core.context import AppContext, Ctx
from app.core.errors import ApiError
from app.core.ratelimit import RateLimiter
from app.security import audit
from app.security.passwords import verify_password
from app.security.principal import Scope

router = APIRouter(prefix="/api/auth", tags=["auth"])


BAD_LOGIN = "invalid username or password"


def login_actor(ctx: AppContext, username: str, known: bool) -> str:
    """How the audit log names a login attempt.

    A name that is no user is kept only as a keyed hash: it may be a password
    typed into the wrong field, and the audit log is kept for ever and shown
    on /ui/audit. The hash still groups the attempts of one name."""
    if known:
        return f"user:{username[:64]}"
    digest = hmac.new(
        ctx.server_key, b"login-name\0" + username.strip().lower().encode(), hashlib.sha256
    ).hexdigest()
    return f"unknown-user:{digest[:16]}"


@router.post("/login", response_model=SessionInfo)
async def login(body: LoginRequest, request: Request, response: Response, ctx: Ctx) -> SessionInfo:
    """Log in with a user name and password; sets an HttpOnly session cookie.

    The one auth route without a ``Caller``: before authentication there is no
    principal, so its audit rows name the attempt explicitly, ``actor`` from
    :func:`login_actor` (a keyed hash for a name that is no user) and ``client``
    from the edge's ``client_address``, and the lock-out counts per name and
    address (``app/auth/lockout.py``)."""
    client = client_address(request)
    keys = ctx.login_throttle.keys(body.username, client)
    user = await store.user_by_name(ctx.db, body.username)
    canonical = str(user["username"]) if user is not None else body.username
    actor = login_actor(ctx, canonical, user is not None)
    wait = await lockout_wait(ctx, canonical, user is not None, client)
    if wait > 0:
        await audit.record(
            ctx.db, actor=actor, action="auth.login_locked", client=client, outcome="refused"
        )
        raise ApiError(
            429,
            "login_locked",
            "too many failed logins; try again later",
            headers={"Retry-After": RateLimiter.retry_after_header(wait)},
        )
    password_ok = verify_password(user["password_hash"] if user else None, body.password)
    if user is None or not password_ok or user["disabled"]:
        ctx.login_throttle.failed(*keys, ctx.login_throttle.user_key(body.username))
        await audit.record(
            ctx.db, actor=actor, action="auth.login_failed", client=client, outcome="refused"
        )
        raise ApiError(401, "invalid_login", BAD_LOGIN)
    if await totp.is_enrolled(ctx, int(user["id"])):
        await _second_factor(ctx, body, canonical, int(user["id"]), actor, client)
    ctx.login_throttle.succeeded(*keys)
    old_cookie = request.cookies.get(SESSION_COOKIE)
    if old_cookie:
        old = await credentials.session_for_auth(ctx.db, session_hash(old_cookie))
        if old is not None:
            async with ctx.db.write() as conn:
                await store.delete_session(conn, int(old["id"]))
    session = await open_session(ctx, int(user["id"]), client)
    await audit.record(
        ctx.db,
        actor=f"user:{user['username']}",
        action="auth.login",
        client=client,
        summary={"session": session.session_id},
    )
    set_session_cookie(response, request, ctx, session.cookie_value)
    return SessionInfo(
        username=str(user["username"]), role=Scope(user["role"]), csrf_token=session.csrf_token
    )


async def _second_factor(
    ctx: AppContext, body: LoginRequest, username: str, user_id: int, actor: str, client: str
) -> None:
    """An enrolled user's login also needs a code (app/auth/totp.py); a wrong one
    counts against the lock-out like a wrong password. Still before authentication:
    ``actor`` and ``client`` are the login's own (no ``Caller`` exists yet)."""
    if not body.code:
        raise ApiError(
            401,
            "second_factor_required",
            "enter the code from your authenticator app (or a recovery code)",
            [{"loc": ["body", "code"], "type": "second_factor", "message": "enter the code"}],
        )
    if await totp.check_code(ctx, user_id, body.code) is None:
        failed(ctx, username, client)
        await audit.record(
            ctx.db,
            actor=actor,
            action="auth.login_failed",
            client=client,
            outcome="refused",
            summary={"wrong": "second_factor"},
        )
        raise ApiError(
            401,
            "invalid_second_factor",
            "the code is wrong or was already used",
            [{"loc": ["body", "code"], "type": "second_factor", "message": "wait for a new code"}],
        )


@router.post("/step-up", status_code=204)
async def confirm_identity(body: StepUpProof, caller: AuthenticatedCaller, ctx: Ctx) -> Response:
    """Step up: your password again (plus your authenticator code when enrolled).
    Sensitive acts (a one-owner self-approval, turning the second factor off)
    accept it for ``MC_STEP_UP_SECONDS``. Browser sessions only; failures count
    against the login lock-out."""
    await step_up(ctx, caller, body)
    return Response(status_code=204)


@router.post("/logout", status_code=204)
async def logout(caller: AuthenticatedCaller, ctx: Ctx) -> Response:
    """End the current session (cookie callers) and clear the cookie."""
    await service.log_out(ctx, caller)
    response = Response(status_code=204)
    clear_session_cookie(response)
    return response


@router.get("/session", response_model=SessionInfo)
async def current_session(principal: Authenticated) -> SessionInfo:
    """Who the cookie belongs to, and the CSRF token to send with changes."""
    if principal.kind != "session" or principal.csrf_token is None:
        raise ApiError(400, "not_a_session", "this endpoint is for cookie sessions")
    return SessionInfo(
        username=principal.name, role=principal.scope, csrf_token=principal.csrf_token
    )


@router.post("/password", status_code=204)
async def change_own_password(
    body: PasswordChange, caller: AuthenticatedCaller, ctx: Ctx
) -> Response:
    """Change the logged-in user's password; every session of the user ends."""
    await service.change_own_password(ctx, caller, body)
    response = Response(status_code=204)
    clear_session_cookie(response)
    return response
