"""Reading the event log for clients: the paginated list and the SSE stream (F3).

The stream reads the ``events`` table (so events written by another process,
the worker, arrive within ``event_poll_s``) and sleeps on the in-process bus
between reads (so events written by this process arrive at once). Every read
is filtered by the caller's scope (``events.min_scope``).

A stream ends when:

* the client goes away (Starlette cancels the generator; it also checks
  ``request.is_disconnected()`` on every turn);
* the server is stopping (see ``shutting_down``): a final ``stream.closed``
  event, then the end, so a stop is not held up by open streams;
* the credential the ticket was issued for is no longer valid: re-checked on
  every heartbeat (token revoked or expired, session ended or idle, user
  disabled or given a lower role). The stream then sends a final
  ``stream.closed`` event with the reason and ends.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from starlette.datastructures import State
from starlette.responses import StreamingResponse
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from app.core.clock import now_iso
from app.core.context import AppContext
from app.core.database import Database, Row
from app.core.pagination import PageParams
from app.events.store import EVENT_COLUMNS, event_dict, events_after, scopes_visible_to
from app.events.tickets import StreamSlots, TicketBook
from app.security.principal import Principal, Scope

log = logging.getLogger("mission_control.events")

BATCH = 200
RETRY_MS = 3000
STREAM_HEADERS = {
    "cache-control": "no-store",
    "x-accel-buffering": "no",  # nginx: pass every event through at once
}


@dataclass
class LiveState:
    """Per-application state of the live feed: tickets and open streams."""

    tickets: TicketBook = field(default_factory=TicketBook)
    slots: StreamSlots = field(default_factory=StreamSlots)


def live_state(state: State) -> LiveState:
    """The application's ``LiveState``, created on first use."""
    current = getattr(state, "live_events", None)
    if not isinstance(current, LiveState):
        current = LiveState()
        state.live_events = current
    return current


def shutting_down(state: State) -> bool:
    """True once the server began to stop.

    uvicorn tells an application nothing until every connection has closed, so
    an open stream would hold the stop up; the server's signal handler
    (``app.core.serve._Server.handle_exit``) sets ``app.state.shutting_down``.
    """
    return bool(getattr(state, "shutting_down", False))


# reading the log -------------------------------------------------------------
async def list_events(
    db: Database,
    scope: Scope,
    page: PageParams,
    *,
    event_type: str | None = None,
    subject_type: str | None = None,
    subject_id: int | None = None,
    before_id: int | None = None,
) -> tuple[list[Row], int]:
    """Stored events visible to ``scope``, newest first."""
    visible = scopes_visible_to(scope)
    where = [f"min_scope IN ({','.join('?' for _ in visible)})"]
    params: list[Any] = list(visible)
    if event_type is not None:
        where.append("type = ?")
        params.append(event_type)
    if subject_type is not None:
        where.append("subject_type = ?")
        params.append(subject_type)
    if subject_id is not None:
        where.append("subject_id = ?")
        params.append(subject_id)
    if before_id is not None:
        where.append("id < ?")
        params.append(before_id)
    clause = " AND ".join(where)
    rows = await db.fetch_all(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE {clause} ORDER BY id DESC LIMIT ? OFFSET ?",
        (*params, page.limit, page.offset),
    )
    total = await db.fetch_one(f"SELECT count(*) FROM events WHERE {clause}", params)
    return rows, int(total[0]) if total else 0


# the credential behind a stream -------------------------------------------------
async def credential_problem(ctx: AppContext, principal: Principal) -> str | None:
    """Why the credential a stream was opened with no longer holds, or None."""
    now = now_iso()
    if principal.kind == "token":
        row = await ctx.db.fetch_one(
            "SELECT scope, expires_at, revoked_at FROM api_tokens WHERE id = ?",
            (principal.token_id,),
        )
        if row is None or row["revoked_at"] is not None:
            return "credential_revoked"
        if row["expires_at"] is not None and row["expires_at"] <= now:
            return "credential_expired"
        if row["scope"] != principal.scope.value:
            return "scope_changed"
        return None
    row = await ctx.db.fetch_one(
        "SELECT s.idle_expires_at, s.absolute_expires_at, u.role, u.disabled"
        " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?",
        (principal.session_id,),
    )
    if row is None or row["disabled"]:
        return "session_ended"
    idle_ok = row["idle_expires_at"] > now or ctx.usage.session_active(
        int(principal.session_id or 0), ctx.settings.session_idle_minutes
    )
    if row["absolute_expires_at"] <= now or not idle_ok:
        return "session_ended"
    if row["role"] != principal.scope.value:
        return "scope_changed"
    return None


# the SSE stream ----------------------------------------------------------------
def _clean(text: str) -> str:
    return text.replace("\r", "").replace("\n", "")


def sse_event(row: Row) -> bytes:
    data = json.dumps(event_dict(row), separators=(",", ":"), default=str)
    return f"id: {int(row['id'])}\nevent: {_clean(str(row['type']))}\ndata: {data}\n\n".encode()


def sse_closed(reason: str) -> bytes:
    data = json.dumps({"reason": reason})
    return f"event: stream.closed\ndata: {data}\n\n".encode()


HEARTBEAT = b": keep-alive\n\n"
OPENING = f"retry: {RETRY_MS}\n: connected\n\n".encode()


async def event_stream(
    request: Request,
    ctx: AppContext,
    principal: Principal,
    last_id: int,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[bytes]:
    """Events after ``last_id`` visible to the principal, then live ones."""
    settings = ctx.settings
    yield OPENING
    next_heartbeat = clock() + settings.event_heartbeat_s
    while True:
        if shutting_down(request.app.state):
            yield sse_closed("server_stopping")
            return
        if await request.is_disconnected():
            return
        published = ctx.bus.last_published_id
        rows = await events_after(ctx.db, last_id, principal.scope, limit=BATCH)
        for row in rows:
            last_id = int(row["id"])
            yield sse_event(row)
        if len(rows) == BATCH:
            continue  # catching up: read on without waiting
        now = clock()
        if now >= next_heartbeat:
            problem = await credential_problem(ctx, principal)
            if problem is not None:
                log.info("event stream closed", extra={"actor": principal.actor, "why": problem})
                yield sse_closed(problem)
                return
            yield HEARTBEAT
            next_heartbeat = now + settings.event_heartbeat_s
        if ctx.bus.last_published_id != published:
            continue  # something was committed while we read
        await ctx.bus.wait(max(0.0, min(settings.event_poll_s, next_heartbeat - clock())))


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` answer that gives its stream slot back when it ends,
    however it ends (finished, client gone, cancelled)."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        super().__init__(content, headers=STREAM_HEADERS, media_type=self.media_type)
        self._on_close = on_close

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
