"""In-process wake-up for live-event readers.

Events are stored in SQLite first; the bus only tells waiting SSE streams and
the rules engine that something new is there. Events written by another
process (the worker) are found by the readers' periodic poll.
"""

from __future__ import annotations

import asyncio
import contextlib


class EventBus:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.last_published_id = 0

    def publish(self, last_id: int) -> None:
        self.last_published_id = max(self.last_published_id, last_id)
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout_s: float) -> None:
        """Return when something is published, or after ``timeout_s``."""
        event = self._event
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await event.wait()
