"""Live events in process (F3): tickets, the refusals before a stream starts, the
stored list, and the stream generator itself (scope, resume, heartbeat, the
credential re-check, shutdown). The stream over real HTTP is in
``tests/integration/test_sse_stream.py``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from app.core.context import AppContext
from app.events.store import insert_event
from app.events.stream import event_stream, live_state
from app.events.tickets import MAX_TICKETS_PER_IDENTITY, StreamSlots, TicketBook, TicketRefused
from app.events.transaction import transaction
from app.events.types import EventType
from app.security.principal import Principal, Scope
from tests.support.api import TokenFactory, assert_error_shape, bearer, login

STREAM = "/api/events/stream"


async def ticket_for(client: httpx.AsyncClient, token: str) -> str:
    response = await client.post("/api/events/ticket", headers=bearer(token))
    assert response.status_code == 200, response.text
    return str(response.json()["ticket"])


async def add_events(ctx: AppContext, *scopes: Scope) -> list[int]:
    ids = []
    async with ctx.db.write() as conn:
        for scope in scopes:
            ids.append(
                await insert_event(
                    conn,
                    event_type=EventType.TASK_CREATED,
                    subject_type="task",
                    subject_id=1,
                    actor="test",
                    payload={"scope": scope.value},
                    min_scope=scope,
                )
            )
    return ids


# tickets -----------------------------------------------------------------------
async def test_ticket_is_random_short_lived_and_kept_only_as_a_hash(
    app: FastAPI, client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    token = await make_token(Scope.READ)
    response = await client.post("/api/events/ticket", headers=bearer(token))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"ticket", "expires_in"} and body["expires_in"] == 30
    ticket = body["ticket"]
    assert len(ticket) == 43 and ticket != await ticket_for(client, token)
    book = live_state(app.state).tickets
    assert ticket not in book._entries
    assert hashlib.sha256(ticket.encode()).hexdigest() in book._entries


async def test_ticket_needs_a_credential_and_csrf_with_a_cookie(
    client: httpx.AsyncClient, admin_user: str
) -> None:
    assert_error_shape(await client.post("/api/events/ticket"), 401, "unauthenticated")
    csrf = (await login(client, admin_user)).json()["csrf_token"]
    assert_error_shape(await client.post("/api/events/ticket"), 403, "csrf_failed")
    response = await client.post("/api/events/ticket", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200


async def test_outstanding_tickets_are_capped_per_identity(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    token = await make_token(Scope.READ)
    for _ in range(MAX_TICKETS_PER_IDENTITY):
        await ticket_for(client, token)
    refused = await client.post("/api/events/ticket", headers=bearer(token))
    assert_error_shape(refused, 429, "rate_limited")
    other = await make_token(Scope.OPERATE)
    assert (await client.post("/api/events/ticket", headers=bearer(other))).status_code == 200


def test_ticket_book_rules() -> None:
    now = [100.0]
    book = TicketBook(max_tickets=3, clock=lambda: now[0])
    alice = Principal(kind="token", scope=Scope.READ, name="a", token_public_id="aaaaaaaaaa")
    ticket = book.issue(alice, "10.0.0.1", 30)
    with pytest.raises(TicketRefused, match="another client"):
        book.redeem(ticket, "10.0.0.2")
    second = book.issue(alice, "10.0.0.1", 30)
    assert book.redeem(second, "10.0.0.1") == alice
    with pytest.raises(TicketRefused, match="already used"):
        book.redeem(second, "10.0.0.1")
    late = book.issue(alice, "10.0.0.1", 30)
    now[0] += 30.0
    with pytest.raises(TicketRefused, match="expired"):
        book.redeem(late, "10.0.0.1")
    assert book.purge() == 3 and len(book) == 0
    for forged in (None, "", "short", "a" * 43, "é" * 43):
        with pytest.raises(TicketRefused):
            book.redeem(forged, "10.0.0.1")


def test_stream_slots() -> None:
    slots = StreamSlots()
    assert slots.acquire("a", 2) and slots.acquire("a", 2) and not slots.acquire("a", 2)
    assert slots.acquire("b", 2)
    slots.release("a")
    assert slots.count("a") == 1 and slots.acquire("a", 2)
    for _ in range(3):
        slots.release("a")
    assert slots.count("a") == 0 and slots.total() == 1


# refusals before any streaming ------------------------------------------------------
@pytest.mark.parametrize("ticket", [None, "", "forged", "A" * 43, "A" * 5000])
async def test_stream_without_a_valid_ticket_is_401(
    client: httpx.AsyncClient, ticket: str | None
) -> None:
    params = {"ticket": ticket} if ticket is not None else {}
    response = await client.get(STREAM, params=params)
    assert_error_shape(response, 401, "unauthenticated")
    assert response.headers["content-type"].startswith("application/json")


async def test_a_used_ticket_is_refused(
    app: FastAPI, client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    ticket = await ticket_for(client, await make_token(Scope.READ))
    live_state(app.state).tickets.redeem(ticket, "127.0.0.1")  # as a first stream would
    response = await client.get(STREAM, params={"ticket": ticket})
    assert_error_shape(response, 401, "unauthenticated")
    assert "already used" in response.json()["error"]["message"]


async def test_an_expired_ticket_is_refused(
    app: FastAPI, client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    now = [0.0]
    live_state(app.state).tickets = TicketBook(clock=lambda: now[0])
    ticket = await ticket_for(client, await make_token(Scope.READ))
    now[0] += 30.0
    response = await client.get(STREAM, params={"ticket": ticket})
    assert_error_shape(response, 401, "unauthenticated")
    assert "expired" in response.json()["error"]["message"]


async def test_a_ticket_works_only_from_the_address_it_was_issued_to(
    app: FastAPI, client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    ticket = await ticket_for(client, await make_token(Scope.READ))
    transport = httpx.ASGITransport(app=app, client=("10.9.9.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as elsewhere:
        response = await elsewhere.get(STREAM, params={"ticket": ticket})
    assert_error_shape(response, 401, "unauthenticated")


async def test_stream_over_the_per_identity_cap_is_429(
    app: FastAPI, client: httpx.AsyncClient, make_token: TokenFactory, ctx: AppContext
) -> None:
    token = await make_token(Scope.READ)
    ticket = await ticket_for(client, token)
    actor = f"token:{token.split('_')[1]}"
    slots = live_state(app.state).slots
    for _ in range(ctx.settings.event_streams_per_identity):
        assert slots.acquire(actor, ctx.settings.event_streams_per_identity)
    with anyio.fail_after(5):  # without the cap this would stream for ever
        response = await client.get(STREAM, params={"ticket": ticket})
    assert_error_shape(response, 429, "too_many_streams")
    assert slots.count(actor) == ctx.settings.event_streams_per_identity


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "9" * 30, "١٢".encode()])
async def test_bad_last_event_id_is_400_and_holds_no_slot(
    app: FastAPI, client: httpx.AsyncClient, make_token: TokenFactory, value: str | bytes
) -> None:
    ticket = await ticket_for(client, await make_token(Scope.READ))
    response = await client.get(STREAM, params={"ticket": ticket}, headers={"Last-Event-ID": value})
    assert_error_shape(response, 400, "invalid_last_event_id")
    assert live_state(app.state).slots.total() == 0


# the stored list --------------------------------------------------------------------
async def test_event_list_is_filtered_by_scope_and_type(
    client: httpx.AsyncClient, make_token: TokenFactory, ctx: AppContext
) -> None:
    read_id, operate_id, admin_id = await add_events(ctx, Scope.READ, Scope.OPERATE, Scope.ADMIN)
    async with transaction(ctx, "test") as tx:
        policy_id = await tx.emit(EventType.POLICY_CHANGED, "policy", None, {"name": "x"})

    async def ids(token: str, **params: Any) -> list[int]:
        response = await client.get("/api/events", headers=bearer(token), params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    read, admin = await make_token(Scope.READ), await make_token(Scope.ADMIN)
    assert await ids(read) == [policy_id, read_id]
    assert await ids(await make_token(Scope.OPERATE)) == [policy_id, operate_id, read_id]
    assert await ids(admin) == [policy_id, admin_id, operate_id, read_id]
    assert await ids(admin, type="policy.changed") == [policy_id]
    assert await ids(admin, limit=2) == [policy_id, admin_id]
    assert await ids(admin, before_id=operate_id) == [read_id]
    page = (await client.get("/api/events", headers=bearer(admin), params={"limit": 1})).json()
    assert page["total"] == 4 and page["next_offset"] == 1
    item = page["items"][0]
    assert item["type"] == "policy.changed" and item["payload"] == {"name": "x"}


@pytest.mark.parametrize(
    "params",
    [{"type": "shell.run"}, {"limit": 201}, {"offset": -1}, {"subject_id": "x"}, {"before_id": 0}],
)
async def test_event_list_bad_input(
    client: httpx.AsyncClient, admin_headers: dict[str, str], params: dict[str, Any]
) -> None:
    response = await client.get("/api/events", headers=admin_headers, params=params)
    assert_error_shape(response, 422, "validation_failed")


# the stream generator ----------------------------------------------------------------
class FakeRequest:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.disconnected = False

    async def is_disconnected(self) -> bool:
        return self.disconnected


def parse(chunk: bytes) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for line in chunk.decode().splitlines():
        if line.startswith(":"):
            fields.setdefault("comments", []).append(line[1:].strip())
        elif line:
            name, _, value = line.partition(": ")
            fields[name] = value
    return fields


async def take(stream: AsyncIterator[bytes], count: int, timeout_s: float = 5) -> list[bytes]:
    out: list[bytes] = []
    with anyio.fail_after(timeout_s):
        async for chunk in stream:
            out.append(chunk)
            if len(out) == count:
                break
    return out


async def token_principal(ctx: AppContext, make_token: TokenFactory, scope: Scope) -> Principal:
    token = await make_token(scope)
    public_id = token.split("_")[1]
    row = await ctx.db.fetch_one("SELECT id FROM api_tokens WHERE public_id = ?", (public_id,))
    assert row is not None
    return Principal(
        kind="token", scope=scope, name="t", token_id=int(row[0]), token_public_id=public_id
    )


async def test_stream_replays_after_an_id_in_order_filtered_by_scope(
    app: FastAPI, ctx: AppContext, make_token: TokenFactory
) -> None:
    ids = await add_events(ctx, Scope.READ, Scope.ADMIN, Scope.READ, Scope.OPERATE, Scope.READ)
    principal = await token_principal(ctx, make_token, Scope.READ)
    stream = event_stream(FakeRequest(app), ctx, principal, ids[0])  # type: ignore[arg-type]
    opening, *events = await take(stream, 3)
    assert b"connected" in opening and b"retry: " in opening
    got = [parse(chunk) for chunk in events]
    assert [int(e["id"]) for e in got] == [ids[2], ids[4]]
    assert got[0]["event"] == "task.created"
    assert json.loads(got[0]["data"])["payload"] == {"scope": "read"}
    await stream.aclose()


async def test_stream_is_woken_by_the_bus_not_only_by_the_poll(
    app: FastAPI, ctx: AppContext, make_token: TokenFactory
) -> None:
    ctx.settings.event_poll_s = 30.0
    principal = await token_principal(ctx, make_token, Scope.READ)
    stream = event_stream(FakeRequest(app), ctx, principal, 0)  # type: ignore[arg-type]
    await take(stream, 1)
    async with anyio.create_task_group() as group:

        async def write_soon() -> None:
            await anyio.sleep(0.2)
            async with transaction(ctx, "test") as tx:
                await tx.emit(EventType.TASK_CREATED, "task", 7)

        group.start_soon(write_soon)
        (chunk,) = await take(stream, 1, timeout_s=3)
    assert parse(chunk)["event"] == "task.created"
    await stream.aclose()


@pytest.mark.parametrize("settings_overrides", [{"event_heartbeat_s": 0.1, "event_poll_s": 0.05}])
async def test_heartbeat_rechecks_the_token_and_ends_on_revocation(
    app: FastAPI, ctx: AppContext, make_token: TokenFactory
) -> None:
    principal = await token_principal(ctx, make_token, Scope.READ)
    stream = event_stream(FakeRequest(app), ctx, principal, 0)  # type: ignore[arg-type]
    chunks = await take(stream, 3)
    assert parse(chunks[1]) == {"comments": ["keep-alive"]}
    async with ctx.db.write() as conn:
        await conn.execute(
            "UPDATE api_tokens SET revoked_at = '2000-01-01T00:00:00.000000Z' WHERE id = ?",
            (principal.token_id,),
        )
    rest = await take(stream, 100)  # ends by itself
    closing = parse(rest[-1])
    assert closing["event"] == "stream.closed"
    assert json.loads(closing["data"]) == {"reason": "credential_revoked"}


@pytest.mark.parametrize("settings_overrides", [{"event_heartbeat_s": 0.1, "event_poll_s": 0.05}])
async def test_heartbeat_ends_the_stream_of_an_ended_session(
    app: FastAPI, ctx: AppContext, client: httpx.AsyncClient, admin_user: str
) -> None:
    csrf = (await login(client, admin_user)).json()["csrf_token"]
    row = await ctx.db.fetch_one("SELECT id, user_id FROM sessions")
    assert row is not None
    principal = Principal(
        kind="session", scope=Scope.ADMIN, name=admin_user, user_id=row[1], session_id=row[0]
    )
    stream = event_stream(FakeRequest(app), ctx, principal, 0)  # type: ignore[arg-type]
    await take(stream, 2)
    assert (await client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})).status_code in (
        200,
        204,
    )
    rest = await take(stream, 100)
    assert json.loads(parse(rest[-1])["data"]) == {"reason": "session_ended"}


async def test_stream_ends_on_shutdown_and_on_disconnect(
    app: FastAPI, ctx: AppContext, make_token: TokenFactory
) -> None:
    principal = await token_principal(ctx, make_token, Scope.READ)
    request = FakeRequest(app)
    stream = event_stream(request, ctx, principal, 0)  # type: ignore[arg-type]
    await take(stream, 1)
    app.state.shutting_down = True
    try:
        rest = await take(stream, 100)
    finally:
        app.state.shutting_down = False
    assert json.loads(parse(rest[-1])["data"]) == {"reason": "server_stopping"}

    other = FakeRequest(app)
    stream = event_stream(other, ctx, principal, 0)  # type: ignore[arg-type]
    await take(stream, 1)
    other.disconnected = True
    assert await take(stream, 100) == []
