"""systemd notify protocol: READY after the socket is bound, watchdog pings
from a task that first proves the event loop and the database work."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

import sdnotify

log = logging.getLogger("mission_control.systemd")


class Notifier:
    """Sends sd_notify messages; a no-op when not started by systemd."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._notifier = sdnotify.SystemdNotifier() if self.enabled else None
        if self._notifier is not None and self._notifier.socket is None:
            self._notifier = None  # NOTIFY_SOCKET set but not reachable
        if self._notifier is not None:
            # never block the event loop if nobody drains the notify socket
            self._notifier.socket.setblocking(False)

    def send(self, message: str) -> None:
        if self._notifier is not None:
            try:
                self._notifier.socket.sendall(message.encode())
            except BlockingIOError:
                log.warning("systemd notify socket is full; message dropped")
            except OSError:
                log.warning("systemd notify socket is not reachable")

    def ready(self, status: str) -> None:
        self.send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1\nSTATUS=stopping")


def watchdog_interval_s() -> float | None:
    """Half of WATCHDOG_USEC, when systemd asked for pings for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return None


async def watchdog_loop(
    notifier: Notifier, interval_s: float, healthy: Callable[[], Awaitable[bool]]
) -> None:
    """Ping only while ``healthy()`` answers true in time: a stuck loop or a
    stuck database stops the pings and systemd restarts the service."""
    while True:
        try:
            async with asyncio.timeout(interval_s):
                ok = await healthy()
        except TimeoutError:
            ok = False
        if ok:
            notifier.send("WATCHDOG=1")
        else:
            log.warning("watchdog check failed; not pinging systemd")
        await asyncio.sleep(interval_s)


async def wait_until(predicate: Callable[[], bool], poll_s: float = 0.02) -> None:
    while not predicate():
        await asyncio.sleep(poll_s)
