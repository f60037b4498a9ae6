"""Creating and ending UI sessions (server-side rows, HttpOnly cookies)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import Request, Response

from app.access.dependencies import SESSION_COOKIE, session_hash
from app.auth import store
from app.core.clock import in_future
from app.core.context import AppContext


@dataclass(frozen=True)
class NewSession:
    session_id: int
    cookie_value: str
    csrf_token: str


async def open_session(ctx: AppContext, user_id: int, client: str) -> NewSession:
    cookie_value = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    async with ctx.db.write() as conn:
        session_id = await store.insert_session(
            conn,
            session_hash=session_hash(cookie_value),
            user_id=user_id,
            csrf_token=csrf_token,
            client=client,
            idle_expires_at=in_future(minutes=ctx.settings.session_idle_minutes),
            absolute_expires_at=in_future(hours=ctx.settings.session_absolute_hours),
        )
    return NewSession(session_id, cookie_value, csrf_token)


def set_session_cookie(response: Response, request: Request, ctx: AppContext, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=ctx.settings.session_absolute_hours * 3600,
        httponly=True,
        samesite="strict",
        secure=bool(getattr(request.state, "secure", False)),
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
