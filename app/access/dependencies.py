"""FastAPI dependencies that authenticate every protected route (F1, F25, F30).

There is no configuration under which these let a request through without a
valid credential: no "dev mode", no trusted header, no trusted address.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from app.access import credentials
from app.access.refusals import record_anonymous_refusal, record_refusal
from app.core.clock import now_iso
from app.core.context import AppContext, Ctx
from app.core.errors import ApiError
from app.core.ratelimit import RateLimiter
from app.security.principal import Principal, Scope
from app.security.tokens import parse_public_id, token_matches

SESSION_COOKIE = "mc_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def unauthenticated(message: str = "a valid credential is required") -> ApiError:
    return ApiError(401, "unauthenticated", message, headers={"WWW-Authenticate": "Bearer"})


def session_hash(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode()).hexdigest()


async def _token_principal(ctx: AppContext, presented: str) -> Principal:
    public_id = parse_public_id(presented)
    if public_id is None:
        raise unauthenticated()
    row = await credentials.token_for_auth(ctx.db, public_id)
    if row is None or not token_matches(ctx.server_key, presented, row["token_hash"]):
        raise unauthenticated()
    if row["revoked_at"] is not None:
        raise unauthenticated()
    if row["expires_at"] is not None and row["expires_at"] <= now_iso():
        raise unauthenticated("the token has expired")
    ctx.usage.token_used(int(row["id"]))
    return Principal(
        kind="token",
        scope=Scope(row["scope"]),
        name=str(row["name"]),
        token_id=int(row["id"]),
        token_public_id=str(row["public_id"]),
        owner_user_id=int(row["owner_user_id"]) if row["owner_user_id"] is not None else None,
    )


async def _session_principal(ctx: AppContext, cookie_value: str) -> Principal:
    row = await credentials.session_for_auth(ctx.db, session_hash(cookie_value))
    if row is None or row["disabled"]:
        raise unauthenticated("the session has ended; log in again")
    now = now_iso()
    # seen by this process since the last flush: idle time on the monotonic clock
    idle_ok = row["idle_expires_at"] > now or ctx.usage.session_active(
        int(row["id"]), ctx.settings.session_idle_minutes
    )
    if row["absolute_expires_at"] <= now or not idle_ok:
        raise unauthenticated("the session has ended; log in again")
    ctx.usage.session_seen(int(row["id"]))
    return Principal(
        kind="session",
        scope=Scope(row["role"]),
        name=str(row["username"]),
        user_id=int(row["user_id"]),
        session_id=int(row["id"]),
        csrf_token=str(row["csrf_token"]),
    )


def _check_csrf(request: Request, principal: Principal) -> None:
    """Cookie-authenticated state changes need the session's CSRF token (F30)."""
    if request.method in SAFE_METHODS:
        return
    presented = request.headers.get(CSRF_HEADER, "")
    expected = principal.csrf_token or ""
    if not presented or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise ApiError(403, "csrf_failed", "missing or wrong CSRF token (X-CSRF-Token header)")


def _route_name(request: Request) -> str:
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


async def authenticate(request: Request, ctx: Ctx) -> Principal:
    """Resolve the caller from the Authorization header or the session cookie.

    A refused state-changing request is audited and raises a security alert.
    """
    try:
        return await _authenticate(request, ctx)
    except ApiError as exc:
        if request.method not in SAFE_METHODS and exc.status in (401, 403):
            await record_anonymous_refusal(
                ctx,
                client=client_address(request),
                action=_route_name(request),
                target=request.url.path,
                reason=exc.code,
            )
        raise


async def _authenticate(request: Request, ctx: Ctx) -> Principal:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise unauthenticated("use 'Authorization: Bearer <token>'")
        principal = await _token_principal(ctx, value.strip())
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise unauthenticated()
        principal = await _session_principal(ctx, cookie)
        _check_csrf(request, principal)
    wait = ctx.credential_limiter.check(principal.actor)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            "too many requests for this credential; slow down",
            headers={"Retry-After": RateLimiter.retry_after_header(wait)},
        )
    request.state.principal = principal
    return principal


Authenticated = Annotated[Principal, Depends(authenticate)]


def require(needed: Scope) -> Callable[[Principal, Request, AppContext], Awaitable[Principal]]:
    async def dependency(principal: Authenticated, request: Request, ctx: Ctx) -> Principal:
        if not principal.scope.allows(needed):
            await record_refusal(
                ctx,
                actor=principal.actor,
                client=client_address(request),
                action=_route_name(request),
                target=request.url.path,
                reason=f"needs scope {needed.value}, has {principal.scope.value}",
            )
            raise ApiError(
                403, "insufficient_scope", f"this action needs the '{needed.value}' scope"
            )
        return principal

    dependency.__name__ = f"require_{needed.value}"
    return dependency


ReadAccess = Annotated[Principal, Depends(require(Scope.READ))]
OperateAccess = Annotated[Principal, Depends(require(Scope.OPERATE))]
AdminAccess = Annotated[Principal, Depends(require(Scope.ADMIN))]


def client_address(request: Request) -> str:
    return str(getattr(request.state, "client_ip", "") or "")
