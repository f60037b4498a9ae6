"""The full-disk guard at the HTTP edge.

* While the state file system is nearly full (:class:`app.care.disk.DiskGuard`),
  state-changing requests (POST, PUT, PATCH, DELETE) that carry a credential
  are answered ``507 insufficient_storage`` before they reach a route; reads,
  login, logout and event tickets (memory only) keep working. Requests without
  any credential go on to get their 401, so the guard tells nothing to a caller
  who has not even tried to authenticate.
* Anywhere a request fails because SQLite or the kernel ran out of space
  (``SQLITE_FULL``, ``ENOSPC``), the answer is the same 507 instead of a 500.
* Either way a ``system`` notification is raised in the background, once per
  ``disk_notify_every_s`` while the condition lasts (again after five minutes
  when the database refused even that), and again after space was freed and
  ran out anew.

It sits inside ``EdgeMiddleware`` (added before it in ``create_app``), so
refusals get the request id, the security headers and the access log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.care.disk import MIB, DiskGuard, DiskState, is_disk_full_error
from app.core.errors import error_body
from app.core.settings import Settings

log = logging.getLogger("mission_control.care.disk")

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: state changes that stay possible on a full disk (they write little or nothing)
EXEMPT_PATHS = frozenset({"/api/auth/login", "/api/auth/logout", "/api/events/ticket"})
ACTOR = "system:disk-guard"
RETRY_FAILED_NOTIFY_S = 300.0
MESSAGE = (
    "the appliance's storage is nearly full, so changes are refused until space is freed;"
    " reading still works (the health page says how to free space)"
)


def _has_credential(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return True
        if name == b"cookie" and b"mc_session=" in value:
            return True
    return False


class DiskAlarm:
    """When to raise the "storage nearly full" notification (monotonic clock)."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self._clock = clock
        self._next_at = 0.0
        self.in_flight = False

    def due(self) -> bool:
        return not self.in_flight and self._clock() >= self._next_at

    def sent(self, ok: bool) -> None:
        self.in_flight = False
        self._next_at = self._clock() + (self.every_s if ok else RETRY_FAILED_NOTIFY_S)

    def recovered(self) -> None:
        """Space is back: the next shortage is announced at once."""
        if not self.in_flight:
            self._next_at = 0.0


class DiskGuardMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.guard = DiskGuard(settings)
        self.alarm = DiskAlarm(settings.disk_notify_every_s)
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        if scope.get("path") not in EXEMPT_PATHS and _has_credential(scope):
            low = self.guard.low()
            if low is not None:
                self._alert(scope, low, "refused")
                await self._send_507(send)
                return
            self.alarm.recovered()
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            if not is_disk_full_error(exc):
                raise
            log.warning(
                "a write failed for lack of space",
                extra={"path": scope.get("path"), "exc_type": type(exc).__name__},
            )
            self.guard.forget()
            self._alert(scope, self.guard.low(), "failed")
            if started:
                raise
            await self._send_507(send)

    @staticmethod
    async def _send_507(send: Send) -> None:
        body = json.dumps(error_body("insufficient_storage", MESSAGE)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 507,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _alert(self, scope: Scope, low: DiskState | None, how: str) -> None:
        if not self.alarm.due():
            return
        app = scope.get("app")
        ctx = getattr(getattr(app, "state", None), "context", None)
        if ctx is None:
            return
        self.alarm.in_flight = True
        task = asyncio.get_running_loop().create_task(self._notify(ctx, low, how))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self, ctx: object, low: DiskState | None, how: str) -> None:
        from app.core.context import AppContext
        from app.events.transaction import transaction
        from app.events.types import Category, Severity

        assert isinstance(ctx, AppContext)
        where = (
            f"{low.free_bytes // MIB} MiB free of {low.total_bytes // MIB} MiB on {low.path}"
            if low is not None
            else "the file system ran out of space during a write"
        )
        what = (
            "Changes are refused (507) until space is freed"
            if how == "refused"
            else "A change failed for lack of space (answered 507)"
        )
        body = (
            f"{what} ({where}). Reading still works."
            " Free space: 'sudo journalctl --vacuum-size=50M', remove old backups"
            " ('missionctl backup list'), or move the state to a bigger card;"
            " the health page lists the fix."
        )
        ok = False
        try:
            async with transaction(ctx, ACTOR, "local") as tx:
                await tx.notify(
                    Category.SYSTEM, Severity.CRITICAL, "Storage nearly full: changes refused", body
                )
            ok = True
        except Exception as exc:  # the database may be unable to take even this
            log.warning(
                "could not store the storage notification", extra={"exc_type": type(exc).__name__}
            )
        finally:
            self.alarm.sent(ok)
