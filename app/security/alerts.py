"""Refused security-relevant requests: audited, and the owner is told.

Every refusal of a state-changing request is audited. The security
notification that goes with it is sent at most once per caller and action
every few minutes, so a flood of refused requests cannot flood the owner.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

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
