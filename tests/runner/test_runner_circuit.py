"""Circuit breaker per command profile (F13), with an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from app.core.circuit import BreakerRegistry, BreakerSnapshot, BreakerState, CircuitBreaker
from app.runner.output import reply_from_run
from app.runner.process import run_confined
from tests.support.processes import fast_limits


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def breaker(clock: FakeClock, opened: list[BreakerSnapshot] | None = None, **kw) -> CircuitBreaker:
    return CircuitBreaker(
        "claude",
        failure_threshold=kw.pop("failure_threshold", 3),
        cool_down_s=kw.pop("cool_down_s", 60.0),
        clock=clock,
        wall_clock=lambda: "2025-01-01T00:00:00.000000Z",
        on_open=opened.append if opened is not None else None,
        **kw,
    )


def test_closed_breaker_allows_and_success_resets_the_count(clock):
    b = breaker(clock)
    b.record_failure()
    b.record_failure()
    b.record_success()
    b.record_failure()
    b.record_failure()
    assert b.state is BreakerState.CLOSED and b.allow()
    assert b.snapshot().consecutive_failures == 2


def test_opens_after_n_consecutive_failures_and_calls_the_hook_once(clock):
    opened: list[BreakerSnapshot] = []
    b = breaker(clock, opened)
    for _ in range(3):
        assert b.allow()
        b.record_failure()
    assert b.state is BreakerState.OPEN
    assert not b.allow()
    assert len(opened) == 1
    assert opened[0].state is BreakerState.OPEN
    assert opened[0].consecutive_failures == 3
    b.record_failure()  # a straggler while open: no second escalation
    assert len(opened) == 1


def test_half_open_after_cool_down_allows_exactly_one_trial(clock):
    b = breaker(clock)
    for _ in range(3):
        b.record_failure()
    clock.advance(59.9)
    assert not b.allow()
    clock.advance(0.1)
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()  # the trial
    assert not b.allow()  # nobody else while the trial runs
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.allow()
    assert b.snapshot().consecutive_failures == 0


def test_failed_trial_reopens_with_a_new_cool_down(clock):
    opened: list[BreakerSnapshot] = []
    b = breaker(clock, opened)
    for _ in range(3):
        b.record_failure()
    clock.advance(60)
    assert b.allow()
    b.record_failure()
    assert b.state is BreakerState.OPEN and len(opened) == 2
    clock.advance(30)
    assert not b.allow()
    assert b.snapshot().retry_after_s == 30.0
    clock.advance(30)
    assert b.allow()


def test_trial_that_never_reports_stops_blocking_after_its_timeout(clock):
    b = breaker(clock, trial_timeout_s=100)
    for _ in range(3):
        b.record_failure()
    clock.advance(60)
    assert b.allow()
    clock.advance(99)
    assert not b.allow()
    clock.advance(1)
    assert b.allow()


def test_snapshot_for_health(clock):
    b = breaker(clock)
    assert b.snapshot().as_dict() == {
        "name": "claude",
        "state": "closed",
        "consecutive_failures": 0,
        "opened_at": None,
        "retry_after_s": None,
    }
    for _ in range(3):
        b.record_failure()
    clock.advance(15)
    assert b.snapshot().as_dict() == {
        "name": "claude",
        "state": "open",
        "consecutive_failures": 3,
        "opened_at": "2025-01-01T00:00:00.000000Z",
        "retry_after_s": 45.0,
    }
    clock.advance(45)
    snap = b.snapshot()
    assert snap.state is BreakerState.HALF_OPEN and snap.retry_after_s == 0.0


def test_a_failing_hook_does_not_break_the_breaker(clock, caplog):
    def hook(_: BreakerSnapshot) -> None:
        raise RuntimeError("escalation store down")

    b = CircuitBreaker("x", failure_threshold=1, cool_down_s=10, clock=clock, on_open=hook)
    b.record_failure()
    assert b.state is BreakerState.OPEN
    assert "on_open hook" in caplog.text


def test_invalid_settings_are_refused(clock):
    with pytest.raises(ValueError):
        CircuitBreaker("x", failure_threshold=0, clock=clock)
    with pytest.raises(ValueError):
        CircuitBreaker("x", cool_down_s=-1, clock=clock)


def test_registry_keeps_one_breaker_per_profile(clock):
    opened: list[BreakerSnapshot] = []
    registry = BreakerRegistry(
        failure_threshold=1, cool_down_s=5, clock=clock, on_open=opened.append
    )
    assert registry.get("claude") is registry.get("claude")
    registry.get("demo").record_failure()
    assert [s.name for s in registry.snapshots()] == ["claude", "demo"]
    assert [s.state for s in registry.snapshots()] == [BreakerState.CLOSED, BreakerState.OPEN]
    assert [s.name for s in opened] == ["demo"]


def test_agent_that_fails_repeatedly_opens_the_breaker(fake_agent, workspace, clock):
    """End to end: a real failing agent, its runs judged by reply_from_run."""
    failing = fake_agent("failing", "import sys; sys.stderr.write('boom'); raise SystemExit(2)")
    healthy = fake_agent(
        "healthy",
        """
        import json
        print(json.dumps({"type": "result", "subtype": "success", "is_error": False,
                          "result": "fine", "usage": {"input_tokens": 1, "output_tokens": 1},
                          "total_cost_usd": 0.0}))
        """,
    )
    opened: list[BreakerSnapshot] = []
    b = breaker(clock, opened, failure_threshold=3, cool_down_s=60)

    async def attempt(argv: list[str]) -> bool | None:
        """None: refused by the breaker; else whether the run succeeded."""
        if not b.allow():
            return None
        run = await run_confined(argv, stdin_data=b"", env={}, cwd=workspace, limits=fast_limits())
        reply = reply_from_run(run)
        if reply.is_error:
            b.record_failure()
        else:
            b.record_success()
        return not reply.is_error

    async def scenario() -> list[bool | None]:
        outcomes = [await attempt(failing) for _ in range(5)]
        clock.advance(60)
        outcomes.append(await attempt(failing))  # the half-open trial fails
        outcomes.append(await attempt(healthy))  # refused: open again
        clock.advance(60)
        outcomes.append(await attempt(healthy))  # trial succeeds
        outcomes.append(await attempt(healthy))
        return outcomes

    outcomes = asyncio.run(scenario())
    assert outcomes == [False, False, False, None, None, False, None, True, True]
    assert len(opened) == 2
    assert b.state is BreakerState.CLOSED
