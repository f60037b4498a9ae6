"""Login throttling: backoff and lock-out per (user, client) and per client,
with a global ceiling per user that spares the addresses the user logs in from (F4).

* ``pair:<user>|<client>``: a client guessing one user's password is locked
  out after ``failures_before_lockout`` failures, the wait doubling with every
  further failure (up to ``max_lockout_s``). Nobody else is affected, so a
  stranger can no longer keep a user (the admin included) locked out.
* ``client:<client>``: the same client trying many user names (spraying).
* ``user:<user>``: a global ceiling, ``user_ceiling`` failures from anywhere
  (many clients, a distributed guess). Past it the user is locked out, except
  from an address they have logged in from before (their VPN address): the
  owner is never locked out where they are (``app/auth/router.py``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

BASE_LOCKOUT_S = 30.0
USER_PREFIX = "user:"


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
        user_ceiling: int = 50,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = failures_before_lockout
        self.user_ceiling = max(user_ceiling, failures_before_lockout)
        self.max_lockout_s = max_lockout_s
        self.max_keys = max_keys
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()

    @staticmethod
    def keys(username: str, client: str) -> tuple[str, str]:
        """The keys a failure from ``client`` for ``username`` counts against locally."""
        name = username.strip().lower()
        return f"pair:{name}|{client}", f"client:{client}"

    @staticmethod
    def user_key(username: str) -> str:
        """The key of the global ceiling of ``username``."""
        return f"{USER_PREFIX}{username.strip().lower()}"

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
            threshold = self.user_ceiling if key.startswith(USER_PREFIX) else self.threshold
            if record.failures >= threshold:
                steps = record.failures - threshold
                wait = min(self.max_lockout_s, BASE_LOCKOUT_S * (2 ** min(steps, 20)))
                record.locked_until = now + wait
        while len(self._records) > self.max_keys:
            self._records.popitem(last=False)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._records.pop(key, None)
