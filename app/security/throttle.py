"""Login throttling: backoff and lock-out per user name and per client (F4)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

BASE_LOCKOUT_S = 30.0


@dataclass
class _Record:
    failures: int = 0
    locked_until: float = 0.0


class LoginThrottle:
    """After N failures a key is locked out; every further failure doubles the wait."""

    def __init__(
        self,
        *,
        failures_before_lockout: int = 5,
        max_lockout_s: float = 900.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = failures_before_lockout
        self.max_lockout_s = max_lockout_s
        self.max_keys = max_keys
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()

    @staticmethod
    def keys(username: str, client: str) -> tuple[str, str]:
        return f"user:{username.strip().lower()}", f"client:{client}"

    def retry_after(self, *keys: str) -> float:
        """Seconds until every given key may try again (0 when none is locked)."""
        now = self._clock()
        waits = [r.locked_until - now for k in keys if (r := self._records.get(k))]
        return max([0.0, *waits])

    def failed(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            record = self._records.setdefault(key, _Record())
            self._records.move_to_end(key)
            record.failures += 1
            if record.failures >= self.threshold:
                steps = record.failures - self.threshold
                wait = min(self.max_lockout_s, BASE_LOCKOUT_S * (2 ** min(steps, 20)))
                record.locked_until = now + wait
        while len(self._records) > self.max_keys:
            self._records.popitem(last=False)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._records.pop(key, None)
