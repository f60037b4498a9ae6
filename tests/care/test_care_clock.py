"""No real-time clock: whether time is synchronised, what waits for it,
and what runs on the monotonic clock instead of the wall clock."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.access import dependencies
from app.care import clock
from app.care.clock import ClockProbe, ClockState, clock_state, fixed, use_probe
from app.core.clock import iso
from app.core.context import AppContext
from app.core.settings import Settings
from app.doctor import check_clock, run_doctor
from app.events.tickets import TicketBook
from app.retention import job as job_module
from app.retention.job import retention_job
from app.security.principal import Principal, Scope
from tests.support.api import login

# --- the probe ----------------------------------------------------------------------------


def test_the_first_source_that_can_tell_decides() -> None:
    asked: list[str] = []

    def source(name: str, answer: bool | None) -> tuple[str, clock.Source]:
        def ask() -> bool | None:
            asked.append(name)
            return answer

        return name, ask

    probe = ClockProbe([source("a", None), source("b", False), source("c", True)], cache_s=0)
    assert probe.state() == ClockState(False, "b", "the clock is not synchronised (yet)")
    assert asked == ["a", "b"]


def test_no_answer_is_unknown_and_a_broken_source_is_no_answer() -> None:
    def broken() -> bool | None:
        raise OSError("boom")

    state = ClockProbe([("x", broken), ("y", lambda: None)], cache_s=0).state()
    assert state.synchronised is None and state.source == "none"
    assert not state.trusted  # unknown is not good enough to delete data


def test_a_clock_before_the_release_is_wrong_whatever_a_source_says() -> None:
    probe = ClockProbe(
        [("liar", lambda: True)], cache_s=0, now=lambda: datetime(1970, 1, 1, tzinfo=UTC)
    )
    state = probe.state()
    assert state.synchronised is False and state.source == "plausibility"
    assert "1970-01-01" in state.detail


def test_answers_are_cached_on_the_monotonic_clock() -> None:
    calls: list[int] = []
    now = [10.0]

    def ask() -> bool:
        calls.append(1)
        return True

    probe = ClockProbe([("s", ask)], cache_s=30, monotonic=lambda: now[0])
    for _ in range(5):
        probe.state()
    assert len(calls) == 1
    now[0] += 31
    probe.state()
    assert len(calls) == 2


def test_timesyncd_flag_is_a_positive_answer_only(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    assert clock.from_timesyncd(flag) is None
    flag.touch()
    assert clock.from_timesyncd(flag) is True


def test_the_real_sources_answer_without_failing() -> None:
    assert clock.from_adjtimex() in (True, False, None)
    assert clock.from_timedatectl(timeout_s=5) in (True, False, None)
    assert clock.PROBE.state().source in ("timesyncd", "adjtimex", "timedatectl", "none")


def test_the_setting_overrides_an_unknown_host(settings: Settings) -> None:
    with use_probe(fixed(None)):
        assert clock_state(settings).synchronised is None
        settings.clock_assume_synchronised = True
        assert clock_state(settings).trusted


# --- what waits for a synchronised clock --------------------------------------------------


def days_ago(days: int) -> str:
    return iso(datetime.now(UTC) - timedelta(days=days))


async def run_job_briefly(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_module, "FIRST_RUN_AFTER_S", 0.0)
    ctx.settings.retention_interval_s = 0.05
    task = asyncio.create_task(retention_job(ctx))
    await asyncio.sleep(0.4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def old_event(ctx: AppContext) -> None:
    async with ctx.db.write() as conn:
        await conn.execute(
            "INSERT INTO events (type, subject_type, actor, created_at)"
            " VALUES ('task.created', 'task', 'test', ?)",
            (days_ago(400),),
        )


async def counts(ctx: AppContext) -> tuple[int, int]:
    events = await ctx.db.fetch_one("SELECT count(*) FROM events")
    runs = await ctx.db.fetch_one("SELECT count(*) FROM audit_log WHERE action = 'retention.run'")
    assert events is not None and runs is not None
    return int(events[0]), int(runs[0])


@pytest.mark.parametrize("answer", [False, None])
async def test_retention_deletes_nothing_while_the_clock_is_not_synchronised(
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    answer: bool | None,
) -> None:
    await old_event(ctx)
    with use_probe(fixed(answer)), caplog.at_level(logging.WARNING, "mission_control.retention"):
        await run_job_briefly(ctx, monkeypatch)
    assert await counts(ctx) == (1, 0)
    assert any("clock is not known to be synchronised" in r.getMessage() for r in caplog.records)

    with use_probe(fixed(True)):
        await run_job_briefly(ctx, monkeypatch)
    events, runs = await counts(ctx)
    assert events == 0 and runs >= 1


def test_the_doctor_warns_about_an_unsynchronised_clock(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with use_probe(fixed(False)):
        check = check_clock(settings)
        assert (check.ok, check.warning) == (False, True)
        run_doctor(settings)
    out = capsys.readouterr()
    assert "WARN  clock: the clock is not synchronised" in out.out
    # counted as a warning (as are serving, worker and backup here), never a failure
    assert "FAIL  clock" not in out.out
    assert f"{out.out.count('WARN  ')} warnings" in out.err
    with use_probe(fixed(True)):
        assert check_clock(settings).ok


# --- what uses the monotonic clock ---------------------------------------------------------


def test_event_tickets_expire_on_the_monotonic_clock() -> None:
    assert TicketBook().clock is time.monotonic
    now = [0.0]
    book = TicketBook(clock=lambda: now[0])
    principal = Principal(kind="token", scope=Scope.READ, name="t", token_id=1)
    ticket = book.issue(principal, "10.0.0.1", ttl_s=30)
    now[0] += 31
    with pytest.raises(Exception, match="expired"):
        book.redeem(ticket, "10.0.0.1")


async def test_an_active_session_survives_a_wall_clock_jump(
    client: httpx.AsyncClient,
    admin_user: str,
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """NTP moves a Pi's clock hours forward after boot: a session in use must not end."""
    await login(client, admin_user)
    assert (await client.get("/api/health")).status_code == 200  # seen: in memory now
    later = iso(datetime.now(UTC) + timedelta(hours=3))
    monkeypatch.setattr(dependencies, "now_iso", lambda: later)
    assert (await client.get("/api/health")).status_code == 200


async def test_the_in_memory_idle_timeout_runs_on_the_monotonic_clock(
    client: httpx.AsyncClient, admin_user: str, ctx: AppContext
) -> None:
    now = [1000.0]
    ctx.usage._monotonic = lambda: now[0]
    await login(client, admin_user)
    assert (await client.get("/api/health")).status_code == 200
    async with ctx.db.write() as conn:  # the stored idle expiry has passed...
        await conn.execute("UPDATE sessions SET idle_expires_at = '2000-01-01T00:00:00.000000Z'")
    now[0] += 59 * 60  # ...but it was used 59 minutes ago (monotonic)
    assert (await client.get("/api/health")).status_code == 200
    now[0] += 61 * 60  # idle for 61 minutes: over
    async with ctx.db.write() as conn:
        await conn.execute("UPDATE sessions SET idle_expires_at = '2000-01-01T00:00:00.000000Z'")
    assert (await client.get("/api/health")).status_code == 401


async def test_a_worker_never_sweeps_its_own_live_run_as_stale(tmp_path: Path) -> None:
    """After NTP steps the clock forward, a live run's last heartbeat stamp looks old
    until its next renewal; the worker that runs it must not fail it meanwhile."""
    from tests.support.worker import Rows, claimed_run, make_settings, running_worker

    settings = make_settings(tmp_path, stale_run_minutes=30)
    rows = Rows(settings.database_path)
    agent = rows.agent()
    task, _ = rows.task(agent)
    before_the_jump = datetime.now(UTC) - timedelta(hours=2)
    async with running_worker(settings) as worker:
        # the worker claimed the task's run; its last heartbeat stamp is before the jump
        conversation = await claimed_run(
            settings.database_path, task, agent, worker.id, at=before_the_jump
        )
        worker._running[conversation] = asyncio.Event()  # it is running it
        assert await worker.sweep_stale() == []
        assert rows.conversation(conversation)["status"] == "IN_PROGRESS"
        del worker._running[conversation]  # not running it any more: stale indeed
        assert await worker.sweep_stale() == [conversation]
