"""Circuit breaker per command profile (F13): a failing agent CLI is not hammered.

States::

    closed --N consecutive failures--> open --cool-down elapsed--> half_open
    half_open --trial succeeds--> closed
    half_open --trial fails-----> open (a new cool-down)

In ``half_open`` exactly one trial run is let through; further requests are
refused until it reports. A trial that never reports (the worker crashed mid-run)
stops blocking after ``trial_timeout_s``.

Pure and synchronous, no database: the worker calls :meth:`CircuitBreaker.allow`
before a run and :meth:`record_success` / :meth:`record_failure` after it (a run
cancelled by the owner should be recorded as neither). ``on_open`` is called each
time the breaker opens (the worker raises an escalation there); it is called
synchronously, so async work must be scheduled from it, and an exception it
raises is logged and never changes the breaker. Meant for one event loop thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

log = logging.getLogger("mission_control.runner.circuit")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """What ``/api/health`` shows about one breaker."""

    name: str
    state: BreakerState
    consecutive_failures: int
    #: wall-clock time (UTC, ISO-8601) the breaker last opened; None when closed
    opened_at: str | None
    #: seconds until a trial run is allowed; 0 when one is allowed now, None when closed
    retry_after_s: float | None

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state": self.state.value,
            "consecutive_failures": self.consecutive_failures,
            "opened_at": self.opened_at,
            "retry_after_s": self.retry_after_s,
        }


def _utc_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        cool_down_s: float = 300.0,
        trial_timeout_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], str] = _utc_iso,
        on_open: Callable[[BreakerSnapshot], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cool_down_s < 0:
            raise ValueError("cool_down_s must not be negative")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cool_down_s = cool_down_s
        #: default: a trial may take as long as a whole run (15 min) plus slack
        self.trial_timeout_s = 1200.0 if trial_timeout_s is None else trial_timeout_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._on_open = on_open
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_mono: float | None = None
        self._opened_at: str | None = None
        self._trial_started: float | None = None

    # ----------------------------------------------------------------- queries

    @property
    def state(self) -> BreakerState:
        """The state, moving open -> half_open when the cool-down has elapsed."""
        if self._state is BreakerState.OPEN and self._cool_down_elapsed():
            self._state = BreakerState.HALF_OPEN
            self._trial_started = None
        return self._state

    def snapshot(self) -> BreakerSnapshot:
        state = self.state
        retry_after: float | None
        if state is BreakerState.CLOSED:
            retry_after = None
        elif state is BreakerState.OPEN:
            assert self._opened_mono is not None
            retry_after = max(0.0, self._opened_mono + self.cool_down_s - self._clock())
        elif self._trial_in_flight():
            assert self._trial_started is not None
            retry_after = max(0.0, self._trial_started + self.trial_timeout_s - self._clock())
        else:
            retry_after = 0.0
        return BreakerSnapshot(
            name=self.name,
            state=state,
            consecutive_failures=self._failures,
            opened_at=self._opened_at if state is not BreakerState.CLOSED else None,
            retry_after_s=None if retry_after is None else round(retry_after, 3),
        )

    # ----------------------------------------------------------------- protocol

    def allow(self) -> bool:
        """May a run start now? In half_open, True once (the trial) until it reports."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        if self._trial_in_flight():
            return False
        self._trial_started = self._clock()
        return True

    def record_success(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_mono = None
        self._opened_at = None
        self._trial_started = None

    def record_failure(self) -> None:
        self._failures += 1
        state = self.state
        if state is BreakerState.HALF_OPEN or (
            state is BreakerState.CLOSED and self._failures >= self.failure_threshold
        ):
            self._open()
        # already open: a straggler that started before it opened; the cool-down stands

    def reset(self) -> None:
        """Operator override: close the breaker."""
        self.record_success()

    # ----------------------------------------------------------------- internals

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_mono = self._clock()
        self._opened_at = self._wall_clock()
        self._trial_started = None
        log.warning(
            "circuit breaker opened",
            extra={"breaker": self.name, "consecutive_failures": self._failures},
        )
        if self._on_open is not None:
            try:
                self._on_open(self.snapshot())
            except Exception:
                log.exception(
                    "on_open hook of circuit breaker failed", extra={"breaker": self.name}
                )

    def _cool_down_elapsed(self) -> bool:
        return self._opened_mono is not None and (
            self._clock() - self._opened_mono >= self.cool_down_s
        )

    def _trial_in_flight(self) -> bool:
        return (
            self._trial_started is not None
            and self._clock() - self._trial_started < self.trial_timeout_s
        )


class BreakerRegistry:
    """One breaker per command profile, created on first use with shared settings."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cool_down_s: float = 300.0,
        trial_timeout_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], str] = _utc_iso,
        on_open: Callable[[BreakerSnapshot], None] | None = None,
    ) -> None:
        self._failure_threshold = failure_threshold
        self._cool_down_s = cool_down_s
        self._trial_timeout_s = trial_timeout_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._on_open = on_open
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, profile: str) -> CircuitBreaker:
        breaker = self._breakers.get(profile)
        if breaker is None:
            breaker = CircuitBreaker(
                profile,
                failure_threshold=self._failure_threshold,
                cool_down_s=self._cool_down_s,
                trial_timeout_s=self._trial_timeout_s,
                clock=self._clock,
                wall_clock=self._wall_clock,
                on_open=self._on_open,
            )
            self._breakers[profile] = breaker
        return breaker

    def snapshots(self) -> list[BreakerSnapshot]:
        return [self._breakers[name].snapshot() for name in sorted(self._breakers)]
