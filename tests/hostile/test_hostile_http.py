"""Hostile HTTP against a real ``missionctl serve`` (raw sockets, loopback).

Request smuggling-style framing (Content-Length with Transfer-Encoding, duplicated
Content-Length, bad chunk sizes), oversized request heads and slow-loris style
slow heads and bodies. Each must end in a clean 4xx or a closed connection, and
never leave the server stuck: after each, normal requests still answer at once.

The server runs with ``MC_REQUEST_TIMEOUT_S=2``: heads and bodies slower than
that are cut (408) and their connection closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from app.core.serve import MAX_HEAD_BYTES
from app.security.principal import Scope
from tests.support.api import assert_error_shape
from tests.support.server import (
    RealServer,
    bearer,
    create_tokens,
    raw_exchange,
    status_of,
)

TIMEOUT_S = 2.0
HOST = b"Host: 127.0.0.1\r\n"
QUICK_S = 1.0


TOKENS: dict[str, str] = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    folder = tmp_path_factory.mktemp("hostile-http")
    TOKENS.update(create_tokens(folder, {"admin": Scope.ADMIN}))
    instance = RealServer(folder, {"MC_REQUEST_TIMEOUT_S": str(TIMEOUT_S)})
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
        assert "Traceback" not in instance.log()


def token_of(_: RealServer) -> str:
    return TOKENS["admin"]


def assert_still_serving(server: RealServer) -> None:
    """A normal anonymous and a normal authenticated request both answer quickly."""
    started = time.monotonic()
    assert httpx.get(f"{server.base}/healthz", timeout=5).status_code == 200
    listing = httpx.get(f"{server.base}/api/tasks", headers=bearer(token_of(server)), timeout=5)
    assert listing.status_code == 200, listing.text
    assert time.monotonic() - started < QUICK_S * 2


def assert_refused(response: bytes, closed: bool, allowed: frozenset[int]) -> None:
    status = status_of(response)
    assert closed, f"the connection stayed open: {response[:200]!r}"
    assert status is None or status in allowed, response[:300]
    assert b"Traceback" not in response


def request(method: bytes, path: bytes, headers: bytes, body: bytes = b"") -> bytes:
    return method + b" " + path + b" HTTP/1.1\r\n" + HOST + headers + b"\r\n" + body


# smuggling-style framing ---------------------------------------------------------
SMUGGLING = {
    "content-length and chunked": request(
        b"POST",
        b"/api/tasks",
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        b"0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    "chunked and content-length": request(
        b"POST",
        b"/api/tasks",
        b"Transfer-Encoding: chunked\r\nContent-Length: 40\r\n",
        b"0\r\n\r\nGET /api/tokens HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    "two different content-lengths": request(
        b"POST", b"/api/tasks", b"Content-Length: 4\r\nContent-Length: 5\r\n", b"abcde"
    ),
    "two equal content-lengths": request(
        b"POST", b"/api/tasks", b"Content-Length: 4\r\nContent-Length: 4\r\n", b"abcd"
    ),
    "content-length list": request(b"POST", b"/api/tasks", b"Content-Length: 4, 4\r\n", b"abcd"),
    "negative content-length": request(b"POST", b"/api/tasks", b"Content-Length: -1\r\n"),
    "content-length not a number": request(b"POST", b"/api/tasks", b"Content-Length: 4x\r\n"),
    "chunk size not hex": request(
        b"POST", b"/api/tasks", b"Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n0\r\n\r\n"
    ),
    "chunk size overflows": request(
        b"POST", b"/api/tasks", b"Transfer-Encoding: chunked\r\n", b"FFFFFFFFFFFFFFFFFFFF\r\nab\r\n"
    ),
    "chunk size with junk": request(
        b"POST", b"/api/tasks", b"Transfer-Encoding: chunked\r\n", b"4 junk\r\nabcd\r\n0\r\n\r\n"
    ),
    "obfuscated transfer-encoding": request(
        b"POST", b"/api/tasks", b"Transfer-Encoding: xchunked\r\nContent-Length: 3\r\n", b"abc"
    ),
    "space before colon": request(
        b"POST", b"/api/tasks", b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n"
    ),
    "header folding": request(
        b"POST", b"/api/tasks", b"Transfer-Encoding: identity\r\n chunked\r\n", b"0\r\n\r\n"
    ),
    "bare LF line endings": b"POST /api/tasks HTTP/1.1\nHost: x\nContent-Length: 2\n\nab",
    "NUL in a header": request(b"GET", b"/healthz", b"X-Evil: a\x00b\r\n"),
    "not HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
}


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_smuggling_style_framing_is_refused(server: RealServer, name: str) -> None:
    response, closed = raw_exchange(server.port, SMUGGLING[name], read_timeout_s=TIMEOUT_S + 3)
    assert_refused(response, closed, frozenset({400}))
    # nothing smuggled: exactly one response, and no task was created behind it
    assert response.count(b"HTTP/1.1 ") <= 1, response[:500]
    assert_still_serving(server)


def test_no_smuggled_request_was_ever_executed(server: RealServer) -> None:
    for payload in SMUGGLING.values():
        raw_exchange(server.port, payload, read_timeout_s=TIMEOUT_S + 3)
    listing = httpx.get(f"{server.base}/api/tasks", headers=bearer(token_of(server)), timeout=5)
    assert listing.json()["total"] == 0


# oversized heads ----------------------------------------------------------------
def test_a_64k_header_line_is_refused(server: RealServer) -> None:
    payload = request(b"GET", b"/healthz", b"X-Big: " + b"a" * 65536 + b"\r\n")
    response, closed = raw_exchange(server.port, payload, read_timeout_s=TIMEOUT_S + 3)
    assert_refused(response, closed, frozenset({400, 431}))
    assert status_of(response) == 431
    assert b'"headers_too_large"' in response
    assert_still_serving(server)


def test_a_megabyte_of_headers_sent_slowly_is_cut_early(server: RealServer) -> None:
    header = b"X-Pad: " + b"p" * 1000 + b"\r\n"
    pieces = [b"GET /healthz HTTP/1.1\r\n" + HOST] + [header * 50] * 20
    response, closed = raw_exchange(server.port, pieces, pause_s=0.02, read_timeout_s=5)
    assert_refused(response, closed, frozenset({400, 431}))
    assert_still_serving(server)


def test_a_64k_url_is_refused(server: RealServer) -> None:
    payload = request(b"GET", b"/healthz?" + b"a" * 65536, b"")
    response, closed = raw_exchange(server.port, payload, read_timeout_s=TIMEOUT_S + 3)
    assert_refused(response, closed, frozenset({400, 414, 431}))
    assert_still_serving(server)


def test_a_large_but_reasonable_head_is_served(server: RealServer) -> None:
    """The limit is nginx's (32 KiB in all): 16 KiB of headers still pass."""
    assert MAX_HEAD_BYTES >= 32 * 1024
    headers = {f"x-pad-{n}": "v" * 2000 for n in range(8)}
    response = httpx.get(f"{server.base}/healthz", headers=headers, timeout=5)
    assert response.status_code == 200


# slow-loris ----------------------------------------------------------------------
def test_a_slow_head_is_cut_after_the_request_timeout(server: RealServer) -> None:
    pieces = [b"GET /healthz HTTP/1.1\r\n"] + [b"X-Drip: x\r\n"] * 20
    started = time.monotonic()
    response, closed = raw_exchange(server.port, pieces, pause_s=0.5, read_timeout_s=5)
    took = time.monotonic() - started
    assert_refused(response, closed, frozenset({408}))
    assert status_of(response) == 408
    assert took < TIMEOUT_S + 8, took
    assert_still_serving(server)


def test_a_connection_that_sends_nothing_is_closed(server: RealServer) -> None:
    started = time.monotonic()
    response, closed = raw_exchange(server.port, b"", read_timeout_s=TIMEOUT_S + 3)
    assert closed, "an idle connection was kept open"
    assert status_of(response) in (None, 408)
    assert time.monotonic() - started < TIMEOUT_S + 8


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_slow_body_is_cut_with_408_and_the_connection_closed(
    server: RealServer, framing: str
) -> None:
    auth = f"Authorization: Bearer {token_of(server)}\r\n".encode()
    if framing == "chunked":
        head = request(b"POST", b"/api/tasks", auth + b"Transfer-Encoding: chunked\r\n")
        drip = b"1\r\n{\r\n"
    else:
        head = request(b"POST", b"/api/tasks", auth + b"Content-Length: 400\r\n")
        drip = b" "
    started = time.monotonic()
    response, closed = raw_exchange(server.port, [head] + [drip] * 20, pause_s=0.5)
    took = time.monotonic() - started
    assert_refused(response, closed, frozenset({408}))
    assert status_of(response) == 408
    assert b'"request_timeout"' in response
    assert took < TIMEOUT_S + 8, took
    assert_still_serving(server)


def test_many_slow_clients_at_once_do_not_stall_the_server(server: RealServer) -> None:
    """40 slow-loris connections (heads and bodies) while normal traffic flows: every
    normal request answers quickly, and every slow connection is closed in time."""
    results: list[tuple[bytes, bool]] = []
    lock = threading.Lock()

    def slow_client(index: int) -> None:
        if index % 2:
            pieces = [b"GET /healthz HTTP/1.1\r\n"] + [b"X-Drip: x\r\n"] * 12
        else:
            pieces = [request(b"POST", b"/api/tasks", b"Content-Length: 100\r\n")] + [b" "] * 12
        outcome = raw_exchange(server.port, pieces, pause_s=0.4, read_timeout_s=4)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=slow_client, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    slowest = 0.0
    with httpx.Client(timeout=5) as client:
        while any(thread.is_alive() for thread in threads):
            started = time.monotonic()
            assert client.get(f"{server.base}/healthz").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.1)
    for thread in threads:
        thread.join()
    assert slowest < QUICK_S, slowest
    assert len(results) == 40
    for response, closed in results:
        assert_refused(response, closed, frozenset({401, 408}))
    assert_still_serving(server)


# malformed bodies without a credential (in-process) -----------------------------
async def test_an_anonymous_malformed_body_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    """FastAPI parses JSON before dependencies run, so an anonymous body that is not
    JSON is a 400 ``invalid_json`` rather than a 401: still nothing is done with it."""
    garbage = await client.post(
        "/api/tasks", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert garbage.status_code in (400, 401)
    assert_error_shape(garbage, garbage.status_code)
    well_formed = await client.post("/api/tasks", json={"title": "x", "agent_id": 1})
    assert_error_shape(well_formed, 401, "unauthenticated")
