"""Running the API under uvicorn with systemd integration and the F2 listen rule."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import json
import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import State
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core.clientip import PEER_CREDENTIALS, peer_uid
from app.core.database import database_ok
from app.core.settings import Settings
from app.core.systemd import Notifier, wait_until, watchdog_interval_s, watchdog_loop

log = logging.getLogger("mission_control.serve")


_PR_SET_DUMPABLE = 4
_PR_GET_DUMPABLE = 3


def make_non_dumpable() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)``: the API process cannot be traced or
    core-dumped, and its ``/proc/<pid>`` files (``mem``, ``environ``) belong to
    root, so a process of the same user (an agent run) cannot read its keys.
    True when the kernel confirms it; False off Linux (logged)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
        dumpable = int(libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0))
    except (OSError, AttributeError):
        log.warning("could not make the process non-dumpable (no prctl)")
        return False
    return dumpable == 0


class ListenRefused(RuntimeError):
    """The requested listen address would expose the API unsafely."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(settings: Settings) -> str:
    """Describe the listen address, or refuse a non-loopback one without a proxy (F2)."""
    if settings.listen_uds is not None:
        return f"unix:{settings.listen_uds}"
    if is_loopback(settings.host):
        return f"http://{settings.host}:{settings.port}"
    if not settings.behind_proxy:
        raise ListenRefused(
            f"refusing to listen on {settings.host}: only loopback or a unix socket is allowed"
            " unless a TLS-terminating proxy fronts the service (--behind-proxy or"
            " MC_BEHIND_PROXY=true)"
        )
    if not settings.trusted_proxies:
        raise ListenRefused(
            f"refusing to listen on {settings.host} behind a proxy without MC_TRUSTED_PROXIES:"
            " name the proxy's address so forwarded headers are trusted only from it"
        )
    return f"http://{settings.host}:{settings.port} (behind proxy)"


#: Largest request head (request line + headers) accepted: nginx's own ceiling
#: (``large_client_header_buffers 4 8k``). uvicorn's httptools parser has none.
MAX_HEAD_BYTES = 32 * 1024


class _Refused(Exception):
    """Stops the parser after a protocol-level refusal (uvicorn then answers nothing)."""


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the two limits it lacks (F10, slow-loris):

    * a request head larger than ``MAX_HEAD_BYTES`` is answered 431 and the
      connection closed (httptools buffers a header of any size otherwise);
    * a request head, or a new connection that sends nothing, must arrive within
      ``head_timeout_s`` (the request timeout), else 408 and the connection closed.
      (Bodies are bounded in time by the request timeout in ``EdgeMiddleware``.)
    """

    head_timeout_s: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = True
        self._head_bytes = 0
        self._raw_head_bytes = 0
        self._refused = False
        self._peer_uid: int | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Who is at the other end of a unix socket, from the kernel (SO_PEERCRED):
        # forwarded headers are trusted only from the proxy's uid (clientip.py).
        self._peer_uid = peer_uid(transport.get_extra_info("socket"))
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        # httptools buffers an incomplete header line of any size: bound the raw bytes
        if self._in_head and not self.transport.is_closing():
            self._raw_head_bytes += len(data)
            if self._raw_head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, "headers_too_large", "the request headers are too large")

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._peer_uid is not None:
            self.scope["extensions"] = {PEER_CREDENTIALS: {"uid": self._peer_uid}}
        self._in_head = True
        self._head_bytes = 0
        self._raw_head_bytes = 0
        if self._head_timer is None:
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        if self._head_bytes > MAX_HEAD_BYTES:  # a head that arrived in one piece
            self._refuse(431, "headers_too_large", "the request headers are too large")
            raise _Refused
        super().on_headers_complete()

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(408, "request_timeout", "the request headers arrived too slowly")

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._refused = True
        self._cancel_head_timer()
        body = json.dumps({"error": {"code": code, "message": message, "details": None}})
        reason = {408: "Request Timeout", 431: "Request Header Fields Too Large"}[status]
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n{body}".encode()
        )
        self.transport.close()
        self.logger.warning("request refused at the protocol level", extra={"status": status})


def bounded_protocol(settings: Settings) -> type[BoundedHttpProtocol]:
    """The protocol class with this configuration's head timeout."""
    timeout = settings.request_timeout_s
    return type("BoundedHttp", (BoundedHttpProtocol,), {"head_timeout_s": timeout})


class _Server(uvicorn.Server):
    """uvicorn server that tells systemd it is stopping as soon as a signal arrives."""

    notifier: Notifier
    app_state: State

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.notifier.stopping()
        self.app_state.shutting_down = True  # live streams end at once
        if sig == signal.SIGTERM:
            # systemd's normal stop: drain, then exit 0 (a second SIGTERM forces it).
            self.force_exit = self.should_exit
            self.should_exit = True
            return
        super().handle_exit(sig, frame)


def build_server(app: Starlette, settings: Settings) -> tuple[_Server, Notifier]:
    """The server for ``app`` (built by ``app.main.create_app``: core imports no domain)."""
    kwargs: dict[str, object] = {}
    if settings.listen_uds is not None:
        Path(settings.listen_uds).parent.mkdir(parents=True, exist_ok=True)
        kwargs["uds"] = str(settings.listen_uds)
    else:
        kwargs["host"] = settings.host
        kwargs["port"] = settings.port
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        http=bounded_protocol(settings),
        loop="asyncio",
        lifespan="on",
        timeout_graceful_shutdown=10,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=16 * 1024,
        **kwargs,  # type: ignore[arg-type]
    )
    server = _Server(config)
    notifier = Notifier()
    server.notifier = notifier
    server.app_state = app.state
    return server, notifier


def settle_heap() -> None:
    """After start-up: collect the garbage of imports and app building once, then
    freeze what survives (modules, routes, schemas: alive until exit) so later
    collections no longer walk it (docs/performance.md)."""
    gc.collect()
    gc.freeze()


async def run_server(server: _Server, notifier: Notifier, where: str) -> None:
    serving = asyncio.create_task(server.serve(), name="uvicorn")
    started = asyncio.create_task(wait_until(lambda: server.started or serving.done()))
    await started
    helpers: list[asyncio.Task[None]] = []
    if server.started:
        settle_heap()
        notifier.ready(f"serving on {where}")
        log.info("ready", extra={"listen": where})
        interval = watchdog_interval_s()
        if interval:
            app_state = server.app_state

            async def healthy() -> bool:
                return await database_ok(app_state.context.db, timeout_s=interval / 2)

            helpers.append(asyncio.create_task(watchdog_loop(notifier, interval, healthy)))
    try:
        await serving
    finally:
        for helper in helpers:
            helper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await helper
        notifier.stopping()
