"""Refused security-relevant requests: audited, and the owner is told.

Every refusal of a state-changing request is audited. The security
notification that goes with it is sent at most once per caller and action
every few minutes, so a flood of refused requests cannot flood the owner.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

ALERT_INTERVAL_S = 300.0


class AlertThrottle:
    def __init__(
        self,
        interval_s: float = ALERT_INTERVAL_S,
        max_keys: int = 5000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._clock = clock
        self._last: OrderedDict[str, float] = OrderedDict()

    def should_alert(self, key: str) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self.max_keys:
            self._last.popitem(last=False)
        return True


@dataclass
class _Window:
    minute: int
    target: str
    reason: str
    count: int = 0


@dataclass(frozen=True)
class RefusalCount:
    """Refused anonymous requests of one client on one route in one minute."""

    client: str
    action: str
    target: str
    reason: str
    minute: int  # windows since the epoch (a minute by default)
    count: int
    window_s: float = 60.0


class RefusalAggregator:
    """Anonymous refusals counted per (client, route) and minute, in memory.

    Every refused anonymous write used to add its own fsync'd audit row (400
    rows in 9.6 s from one client). Now the API counts them and writes one
    row per client, route and minute with the count (``drain``, called by a
    background job and at shutdown). Past ``max_keys`` open windows, new
    pairs are counted together under client ``*`` and route ``*``.
    """

    def __init__(
        self,
        window_s: float = 60.0,
        max_keys: int = 5000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._open: dict[tuple[str, str], _Window] = {}
        self._closed: list[RefusalCount] = []
        self._minute = -1

    def note(self, client: str, action: str, target: str, reason: str) -> None:
        minute = int(self._clock() // self.window_s)
        if minute != self._minute:  # a new window: every open one has ended
            self._minute = minute
            for old_key, old in list(self._open.items()):
                if old.minute != minute:
                    self._close(old_key, old)
        key = (client, action)
        window = self._open.get(key)
        if window is None:
            if len(self._open) >= self.max_keys:
                key = ("*", "*")
                window = self._open.get(key)
            if window is None:
                window = self._open[key] = _Window(minute, target, reason)
        window.count += 1

    def _close(self, key: tuple[str, str], window: _Window) -> None:
        del self._open[key]
        self._closed.append(
            RefusalCount(
                key[0],
                key[1],
                window.target,
                window.reason,
                window.minute,
                window.count,
                self.window_s,
            )
        )

    def drain(self, everything: bool = False) -> list[RefusalCount]:
        """The windows that have ended (all of them with ``everything``)."""
        minute = int(self._clock() // self.window_s)
        for key, window in list(self._open.items()):
            if everything or window.minute < minute:
                self._close(key, window)
        closed, self._closed = self._closed, []
        return closed
