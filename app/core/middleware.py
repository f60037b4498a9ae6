"""The HTTP edge inside the app: request ids, credentials in URLs, rate limits,
body limits, timeouts, security headers and the access log (F3, F4, F10)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from random import getrandbits
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.clientip import ProxyTrust
from app.core.errors import error_body
from app.core.headers import apply_security_headers
from app.core.jsonlimits import MAX_JSON_KEYS, too_many_keys
from app.core.logging import request_id_var
from app.core.ratelimit import RateLimiter
from app.core.settings import Settings

access_log = logging.getLogger("mission_control.access")


class RequestCounter:
    """HTTP requests seen by the edge since the process started: one integer
    addition per request, no I/O. The health sampler (``app/health/sampler.py``)
    turns the difference between two readings into requests per minute."""

    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total = 0


REQUESTS = RequestCounter()

CREDENTIAL_QUERY_NAMES = frozenset(
    {
        "token",
        "access_token",
        "accesstoken",
        "refresh_token",
        "id_token",
        "auth",
        "auth_token",
        "authorization",
        "bearer",
        "api_key",
        "apikey",
        "api-key",
        "key",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "pwd",
        "session",
        "sessionid",
        "session_id",
        "jwt",
        "sig",
        "signature",
        "credential",
        "credentials",
    }
)

LOGIN_PATHS = frozenset({"/api/auth/login", "/login"})
TICKET_PATHS = frozenset({"/api/events/ticket"})
STREAMING_PREFIXES = ("/api/events/stream",)


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; FastAPI passes HTTPException through."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes")


class TooManyKeys(HTTPException):
    """Raised when the whole body is in, before it is parsed (bounded error bodies)."""

    code = "too_many_keys"

    def __init__(self, limit: int) -> None:
        super().__init__(
            400,
            f"the JSON body has more than {limit} keys in all; send only the documented fields",
        )


def relative_location(location: str) -> str:
    """A redirect target without scheme and host.

    Starlette's trailing-slash redirect builds an absolute URL from the
    request's ``Host`` header, which the client chooses; the app never
    redirects to another site, so every ``Location`` is cut to its path and
    query (a relative reference, RFC 9110) and no answer carries a
    client-chosen host.
    """
    parts = urlsplit(location)
    if not parts.scheme and not parts.netloc:
        return location
    path = parts.path or "/"
    if path.startswith(("//", "/\\")):
        path = "/" + path.lstrip("/\\")  # "//evil.example", "/\\evil.example": a host again
    return path + (f"?{parts.query}" if parts.query else "")


def credential_query_names(query_string: bytes) -> list[str]:
    """Names of credential-like parameters in a raw query string."""
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return []
    return sorted({name for name, _ in pairs if name.strip().lower() in CREDENTIAL_QUERY_NAMES})


def _raw_json(status: int, code: str, message: str) -> tuple[int, bytes]:
    import json

    return status, json.dumps(error_body(code, message)).encode()


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.trust = ProxyTrust(settings.trusted_proxies, settings.trusted_proxy_user)
        self.client_limiter = RateLimiter(
            settings.rate_limit_per_client, settings.rate_limit_burst_per_client
        )
        self.login_limiter = RateLimiter(
            settings.login_rate_per_minute / 60.0, settings.login_rate_per_minute
        )
        self.ticket_limiter = RateLimiter(
            settings.ticket_rate_per_minute / 60.0, settings.ticket_rate_per_minute
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        REQUESTS.total += 1
        started = time.perf_counter()
        # 128 random bits for correlation, not secrecy: no system call (uuid4 made one)
        request_id = f"{getrandbits(128):032x}"
        token = request_id_var.set(request_id)
        client, scheme = self.trust.resolve(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_ip"] = client
        state["secure"] = scheme == "https" or self.settings.tls
        status_holder = {"status": 0, "started": False}
        hsts = bool(state["secure"])

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                headers = MutableHeaders(scope=message)
                apply_security_headers(headers, hsts=hsts)
                headers["x-request-id"] = request_id
                if "location" in headers:
                    headers["location"] = relative_location(headers["location"])
            await send(message)

        try:
            refusal = self._refusal(scope, client)
            if refusal is not None:
                status, code, message, extra = refusal
                await self._send_error(send_wrapper, status, code, message, extra)
                return
            body_state = {"waiting": False}
            wrapped_receive = self._limit_body(receive, body_state)
            path = str(scope.get("path", ""))
            if path.startswith(STREAMING_PREFIXES):
                await self.app(scope, wrapped_receive, send_wrapper)
            else:
                try:
                    async with asyncio.timeout(self.settings.request_timeout_s):
                        await self.app(scope, wrapped_receive, send_wrapper)
                except TimeoutError:
                    if status_holder["started"]:
                        pass
                    elif body_state["waiting"]:
                        # the client's body is the slow part (slow-loris): its fault, and
                        # the rest of it is not read, so the connection is closed too
                        await self._send_error(
                            send_wrapper,
                            408,
                            "request_timeout",
                            "the request body arrived too slowly",
                            (("connection", "close"),),
                        )
                    else:
                        await self._send_error(
                            send_wrapper, 504, "timeout", "the request took too long", ()
                        )
        finally:
            access_log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status_holder["status"],
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "client": client,
                },
            )
            request_id_var.reset(token)

    def _refusal(
        self, scope: Scope, client: str
    ) -> tuple[int, str, str, Iterable[tuple[str, str]]] | None:
        names = credential_query_names(scope.get("query_string", b""))
        if names:
            return (
                400,
                "credential_in_url",
                "credentials are accepted only in the Authorization header or the session "
                f"cookie, never in the URL (refused parameter: {', '.join(names)})",
                (),
            )
        path = scope.get("path")
        wait = self.client_limiter.check(client)
        if wait == 0 and path in LOGIN_PATHS:
            wait = self.login_limiter.check(client)
        elif wait == 0 and path in TICKET_PATHS:
            wait = self.ticket_limiter.check(client)
        if wait > 0:
            return (
                429,
                "rate_limited",
                "too many requests; slow down",
                (("retry-after", RateLimiter.retry_after_header(wait)),),
            )
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return 400, "bad_request", "invalid Content-Length header", ()
                if declared > self.settings.body_limit_bytes:
                    limit = self.settings.body_limit_bytes
                    return 413, "body_too_large", f"the request body exceeds {limit} bytes", ()
        return None

    def _limit_body(self, receive: Receive, body_state: dict[str, bool]) -> Receive:
        limit = self.settings.body_limit_bytes
        seen = 0
        chunks: list[bytes] = []

        async def limited() -> Message:
            nonlocal seen
            body_state["waiting"] = True  # stays set if the timeout cancels the wait
            message = await receive()
            body_state["waiting"] = False
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                seen += len(chunk)
                if seen > limit:
                    raise BodyTooLarge(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    body = b"".join(chunks)
                    chunks.clear()
                    if too_many_keys(body):
                        raise TooManyKeys(MAX_JSON_KEYS)
            return message

        return limited

    @staticmethod
    async def _send_error(
        send: Send, status: int, code: str, message: str, extra: Iterable[tuple[str, str]]
    ) -> None:
        _, body = _raw_json(status, code, message)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        headers.extend((k.encode(), v.encode()) for k, v in extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
