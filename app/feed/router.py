"""HTTP endpoints of the event log: tickets, the SSE stream, the stored list (F3)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel

from app.access.caller import ReadCaller
from app.access.dependencies import ReadAccess, client_address
from app.core.context import Ctx
from app.core.errors import ApiError
from app.core.pagination import Page, Pagination
from app.events.store import event_dict, latest_event_id
from app.events.stream import EventStreamResponse, event_stream, list_events, live_state
from app.events.tickets import TicketRefused, TooManyTickets
from app.events.types import EventType

router = APIRouter(prefix="/api/events", tags=["events"])

MAX_EVENT_ID = 2**63 - 1


class TicketView(BaseModel):
    ticket: str
    expires_in: int | float


class EventView(BaseModel):
    id: int
    type: str
    subject_type: str
    subject_id: int | None
    actor: str
    rule_depth: int
    payload: dict[str, Any]
    created_at: str


def _unauthenticated(message: str) -> ApiError:
    return ApiError(401, "unauthenticated", message, headers={"WWW-Authenticate": "Bearer"})


def _parse_last_event_id(value: str | None) -> int | None:
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > MAX_EVENT_ID:
        raise ApiError(
            400, "invalid_last_event_id", "Last-Event-ID must be the id of an event (digits)"
        )
    return int(text)


@router.post("/ticket", response_model=TicketView)
async def create_ticket(caller: ReadCaller, request: Request, ctx: Ctx) -> TicketView:
    """Any scope. A one-time ticket to open the live stream: single use, short-lived,
    bound to this caller (identity, scope, address)."""
    ttl = ctx.settings.event_ticket_ttl_s
    try:
        ticket = live_state(request.app.state).tickets.issue(caller.principal, caller.client, ttl)
    except TooManyTickets:
        raise ApiError(
            429, "rate_limited", "too many unused event tickets; use or let them expire first"
        ) from None
    return TicketView(ticket=ticket, expires_in=int(ttl) if float(ttl).is_integer() else ttl)


@router.get("/stream", responses={200: {"content": {"text/event-stream": {}}}})
async def stream_events(
    request: Request,
    ctx: Ctx,
    ticket: Annotated[str | None, Query(description="one-time ticket")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventStreamResponse:
    """The live feed as Server-Sent Events, authenticated by a one-time ticket.

    Resumes after ``Last-Event-ID``; heartbeat comments keep it open; events are
    filtered by the scope of the credential the ticket was issued for."""
    live = live_state(request.app.state)
    try:
        principal = live.tickets.redeem(ticket, client_address(request))
    except TicketRefused as refused:
        raise _unauthenticated(refused.reason) from None
    resume_after = _parse_last_event_id(last_event_id)
    limit = ctx.settings.event_streams_per_identity
    if not live.slots.acquire(principal.actor, limit):
        raise ApiError(
            429,
            "too_many_streams",
            f"at most {limit} live streams per identity; close one first",
            headers={"Retry-After": "5"},
        )
    try:
        start = resume_after if resume_after is not None else await latest_event_id(ctx.db)
    except BaseException:
        live.slots.release(principal.actor)
        raise
    return EventStreamResponse(
        event_stream(request, ctx, principal, start),
        on_close=lambda: live.slots.release(principal.actor),
    )


@router.get("", response_model=Page[EventView])
async def get_events(
    principal: ReadAccess,
    page: Pagination,
    ctx: Ctx,
    type: Annotated[EventType | None, Query()] = None,
    subject_type: Annotated[
        str | None, Query(min_length=1, max_length=32, pattern=r"^[a-z_]+$")
    ] = None,
    subject_id: Annotated[int | None, Query(ge=0, le=MAX_EVENT_ID)] = None,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_EVENT_ID)] = None,
) -> Page[EventView]:
    """Scope read. Stored events the caller's scope may see, newest first."""
    rows, total = await list_events(
        ctx.db,
        principal.scope,
        page,
        event_type=type.value if type else None,
        subject_type=subject_type,
        subject_id=subject_id,
        before_id=before_id,
    )
    return Page[EventView].build([EventView(**event_dict(r)) for r in rows], total, page)
