"""The watchdog pings only while the loop and the database answer."""

from __future__ import annotations

import asyncio
import contextlib

from app.core.systemd import Notifier, watchdog_interval_s, watchdog_loop


class RecordingNotifier(Notifier):
    def __init__(self) -> None:
        self.enabled = True
        self._notifier = None
        self.sent: list[str] = []

    def send(self, message: str) -> None:
        self.sent.append(message)


async def _run_for(healthy_answer: bool | None, seconds: float) -> list[str]:
    notifier = RecordingNotifier()

    async def healthy() -> bool:
        if healthy_answer is None:
            await asyncio.sleep(10)  # a stuck database
        return bool(healthy_answer)

    task = asyncio.create_task(watchdog_loop(notifier, 0.05, healthy))
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return notifier.sent


async def test_pings_while_healthy() -> None:
    assert (await _run_for(True, 0.3)).count("WATCHDOG=1") >= 2


async def test_no_ping_when_the_database_fails() -> None:
    assert await _run_for(False, 0.3) == []


async def test_no_ping_when_the_database_hangs() -> None:
    assert await _run_for(None, 0.3) == []


def test_interval_is_half_of_watchdog_usec(monkeypatch: object) -> None:
    import os

    os.environ["WATCHDOG_USEC"] = "30000000"
    os.environ.pop("WATCHDOG_PID", None)
    try:
        assert watchdog_interval_s() == 15.0
        os.environ["WATCHDOG_PID"] = "1"
        assert watchdog_interval_s() is None
    finally:
        os.environ.pop("WATCHDOG_USEC", None)
        os.environ.pop("WATCHDOG_PID", None)
