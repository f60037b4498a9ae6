"""``missionctl worker``: the process that runs agents. The API never does.

Lifecycle (docs/runner.md):

1. check that resource limits can be set (else refuse to start: agents would not
   be confined), take the worker-id lock, migrate, open the database, make the process
   non-dumpable (``harden_worker_process``), probe the agents' filesystem sandbox
   (Landlock, ``MC_RUNNER_SANDBOX``; with ``required`` and no sandbox, no agent is
   run, an escalation is opened and the heartbeat says why), recover this worker's
   own orphaned runs, sweep stale runs, write the heartbeat row, ``READY=1``;
2. loop: claim the oldest QUEUED conversation atomically (``claims``), refuse it
   when a quota, a mission bound or the profile's circuit breaker says no
   (``accounting``), else build the gated prompt (``prompt``) and run the agent
   confined (``run_confined``) while a guard renews the lease and stops the run
   when the API cancels it, the lease is lost or a quota/bound is reached by
   others; then store the redacted transcript, the usage, the outcome and its
   consequences in one transaction;
3. beside it: the heartbeat row (on every change, looked at every ``HEARTBEAT_S``;
   unchanged, it is rewritten only every ``worker_heartbeat_quiet_max_s`` to prove
   liveness, so an idle worker does not wear the SD card), the stale-run sweep
   (every minute), the systemd watchdog;
4. SIGTERM: ``STOPPING=1``, no new claims, the run in flight gets
   ``stop_grace_s`` to finish, then it is cancelled and recorded as interrupted
   and re-queued once (``recovery``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from app.conversations import lifecycle as runs
from app.conversations.lifecycle import RunRecord
from app.core.circuit import BreakerRegistry, BreakerSnapshot, BreakerState
from app.core.clock import now_iso, utcnow
from app.core.context import AppContext
from app.core.database import Database, database_ok
from app.core.migrations import MigrationError, migrate
from app.core.settings import Settings
from app.core.systemd import Notifier, watchdog_interval_s, watchdog_loop
from app.events.transaction import Tx, transaction
from app.events.types import EventType
from app.missions import lifecycle as mission_lifecycle
from app.profiles.catalog import Catalog, load_catalog
from app.profiles.prices import PriceTable, load_prices
from app.profiles.profiles import ProfileError
from app.runner import accounting, claims, recovery, workspace_diff
from app.runner.accounting import Refusal
from app.runner.claims import Claim
from app.runner.gate import output_gate
from app.runner.heartbeat import WorkerIdentityError, WorkerLock, worker_id, write_heartbeat
from app.runner.held_approvals import release_due as release_due_approvals
from app.runner.live import LiveOutput
from app.runner.mission_steps import advance_missions
from app.runner.output import AgentReply
from app.runner.plan import PlanError, Planner, RunPlan, quota_of
from app.runner.process import (
    RunResult,
    check_rlimits_settable,
    harden_worker_process,
    run_confined,
)
from app.runner.runtime import (
    Runtime,
    StreamReader,
    StreamUsage,
    attach_output,
    runtimes,
    watch_home,
)
from app.runner.sandbox import SandboxPolicy, SandboxReport
from app.runner.sandbox import probe as probe_sandbox
from app.runner.think import schedule_think_cycles
from app.runner.verdict import (
    Stop,
    Verdict,
    judge,
    reason_text,
    transcript_of,
    with_stream_usage,
)
from app.schedules.service import fire_due_schedules
from app.tasks import review, review_store, transitions, waiting
from app.wiring import build_context

log = logging.getLogger("mission_control.runner.worker")

CLIENT = "worker"
HEARTBEAT_S = 10.0
_FINISH_ATTEMPTS = 5

T = TypeVar("T")


@dataclass(frozen=True)
class WorkerOptions:
    """Tunables of one worker process (tests shorten them)."""

    name: str = "worker"
    #: idle wait between two looks at the queue
    poll_s: float = 1.0
    heartbeat_s: float = HEARTBEAT_S
    #: how often a run checks whether the API cancelled it
    cancel_poll_s: float = 1.0
    stale_check_s: float = 60.0
    #: how often due schedules are looked for (a read; a firing writes)
    schedule_poll_s: float = 5.0
    #: after SIGTERM, how long a run in flight may take to finish before it is cancelled
    stop_grace_s: float = 10.0
    breaker_failures: int = 5
    breaker_cool_down_s: float = 300.0
    #: overrides the profiles' SIGTERM-to-SIGKILL grace (tests)
    term_grace_s: float | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one claimed conversation ended (as far as this worker is concerned)."""

    conversation_id: int
    #: SUCCEEDED, FAILED or CANCELLED (set by someone else), as stored
    status: str
    reason: str | None
    #: an agent process was started
    ran: bool


class WorkerStartError(RuntimeError):
    """The worker cannot confine agents here; it refuses to start rather than run them."""


# --------------------------------------------------------------------------- helpers


async def _retry(action: Callable[[], Awaitable[T]], what: str) -> T:
    """Retry a write that met a locked database (another process held it too long)."""
    delay = 0.2
    for attempt in range(1, _FINISH_ATTEMPTS + 1):
        try:
            return await action()
        except sqlite3.OperationalError:
            if attempt == _FINISH_ATTEMPTS:
                raise
            log.warning("database busy; retrying", extra={"what": what, "attempt": attempt})
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- worker


class Worker:
    """One worker process: claims and runs one conversation at a time."""

    def __init__(
        self,
        settings: Settings,
        options: WorkerOptions | None = None,
        *,
        catalog: Catalog | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or WorkerOptions()
        self.id = worker_id(self.options.name)
        self.actor = f"worker:{self.id}"
        self.catalog = catalog if catalog is not None else load_catalog(settings)
        self.prices: PriceTable = load_prices(settings.prices_path)
        self.runtimes: dict[str, Runtime] = runtimes()
        self._opened: list[BreakerSnapshot] = []
        self.breakers = BreakerRegistry(
            failure_threshold=self.options.breaker_failures,
            cool_down_s=self.options.breaker_cool_down_s,
            on_open=self._opened.append,
        )
        for name in sorted(self.catalog.profiles):
            self.breakers.get(name)
        self.notifier = Notifier()
        self.started_at = now_iso()
        self._lock = WorkerLock(settings.database_path, self.options.name)
        self._ctx: AppContext | None = None
        self._running: dict[int, asyncio.Event] = {}
        self._stopping = asyncio.Event()
        self._closing = asyncio.Event()
        self._changed = asyncio.Event()
        #: (state text, monotonic time) of the last heartbeat row written
        self._last_beat: tuple[str, float] | None = None
        #: the agents' filesystem sandbox as probed at start (None: not started)
        self.sandbox: SandboxReport | None = None
        self._sandbox_policy: SandboxPolicy | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def ctx(self) -> AppContext:
        if self._ctx is None:
            raise RuntimeError("the worker is not started")
        return self._ctx

    @property
    def db(self) -> Database:
        return self.ctx.db

    @property
    def running(self) -> list[int]:
        return sorted(self._running)

    async def start(self) -> None:
        """Lock the id, migrate, open the database, recover, announce ourselves."""
        problem = check_rlimits_settable()
        if problem is not None:
            raise WorkerStartError(problem)
        self._lock.acquire()
        try:
            settings = self.settings
            await asyncio.to_thread(migrate, settings.database_path, settings.backups_path)
            db = Database(
                settings.database_path,
                readers=2,
                busy_timeout_ms=settings.busy_timeout_ms,
                synchronous=settings.db_synchronous,
            )
            await db.open()
            # The worker never loads the server key: it verifies no token, and what it
            # does not hold, no agent can take from it.
            self._ctx = build_context(settings, db, b"")
            if not harden_worker_process():
                log.warning("could not make the worker non-dumpable (prctl unavailable)")
            await self._setup_sandbox()
            await recovery.recover_own(self.ctx, self.id, self.actor)
            await self.sweep_stale()
            await self.write_heartbeat()
        except BaseException:
            await self.close()
            raise
        log.info(
            "worker started",
            extra={"worker_id": self.id, "profiles": sorted(self.catalog.profiles)},
        )

    @property
    def run_tmp_root(self) -> Path:
        """Where each run's private TMPDIR is made (the shared /tmp is not writable)."""
        return self.settings.state_dir.absolute() / "run-tmp"

    async def _setup_sandbox(self) -> None:
        """Probe the agents' filesystem sandbox (``MC_RUNNER_SANDBOX``): with
        ``required`` and no working Landlock, no agent is run (the queue waits), an
        escalation is opened and health says why; with ``auto`` runs go on
        unconfined and health says so."""
        settings = self.settings
        report, policy = await probe_sandbox(
            mode=settings.runner_sandbox,
            database_path=settings.database_path.absolute(),
            state_dir=settings.state_dir.absolute(),
            secrets_dir=settings.secrets_dir.absolute(),
            backups_dir=settings.backups_path.absolute(),
        )
        self.sandbox, self._sandbox_policy = report, policy
        extra = {"status": report.status, "landlock_abi": report.abi, "reason": report.reason}
        if report.enforced:
            log.info("agent runs are sandboxed (Landlock)", extra=extra)
            return
        if report.runs_allowed:
            log.warning("agent runs are NOT confined to their workspace", extra=extra)
            return
        log.error("refusing to run agents: the filesystem sandbox is required", extra=extra)
        async with transaction(self.ctx, self.actor, CLIENT) as tx:
            open_ = await tx.conn.execute_fetchall(
                "SELECT 1 FROM escalations WHERE kind = 'runner_sandbox' AND status = 'open'"
            )
            if not open_:
                await tx.escalate(
                    "runner_sandbox",
                    "runner",
                    None,
                    "the worker refuses to run agents: MC_RUNNER_SANDBOX=required but the"
                    f" filesystem sandbox is not enforced here ({report.reason})",
                    report.as_dict(),
                )

    async def close(self) -> None:
        if self._ctx is not None:
            with contextlib.suppress(Exception):
                await self.write_heartbeat()
            await self._ctx.db.close()
            self._ctx = None
        self._lock.release()

    def request_stop(self) -> None:
        """SIGTERM: stop claiming; the run in flight gets ``stop_grace_s``."""
        if not self._stopping.is_set():
            self.notifier.stopping()
            log.info("stopping", extra={"running": self.running})
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def serve(self, *, once: bool = False) -> Outcome | None:
        """Claim and run until :meth:`request_stop` (``once``: at most one conversation,
        then return its outcome)."""
        helpers = [
            asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"),
            asyncio.create_task(self._stale_loop(), name="worker-stale-sweep"),
            asyncio.create_task(self._schedule_loop(), name="worker-schedules"),
        ]
        interval = watchdog_interval_s()
        if interval:
            db = self.db

            async def healthy() -> bool:
                return await database_ok(db, timeout_s=interval / 2)

            helpers.append(asyncio.create_task(watchdog_loop(self.notifier, interval, healthy)))
        self.notifier.ready(f"worker {self.id} claiming work")
        try:
            if once:
                return await self.run_once()
            while not self.stopping:
                try:
                    outcome = await self.run_once()
                except Exception:
                    log.exception("worker loop error; backing off")
                    outcome = None
                if outcome is None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self.options.poll_s)
        finally:
            # the loops that write end at their next wake-up (cancelling one inside a
            # write transaction would leave the shared connection mid-transaction);
            # the watchdog only reads and is cancelled
            self._closing.set()
            self._changed.set()
            for helper in helpers[3:]:  # after the three loops that write
                helper.cancel()
            for helper in helpers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await helper
        return None

    # ----------------------------------------------------------------- periodic

    def _circuit_state(self) -> dict[str, Any]:
        return {snap.name: snap.as_dict() for snap in self.breakers.snapshots()}

    async def write_heartbeat(self, *, only_if_changed: bool = False) -> bool:
        """Write the heartbeat row; with ``only_if_changed``, skip it when the state is
        the one last written less than ``worker_heartbeat_quiet_max_s`` ago."""
        state: dict[str, Any] = {"circuits": self._circuit_state(), "running": self.running}
        if self.sandbox is not None:
            state["sandbox"] = self.sandbox.as_dict()
        text = json.dumps(state, sort_keys=True)
        now = asyncio.get_running_loop().time()
        if (
            only_if_changed
            and self._last_beat is not None
            and self._last_beat[0] == text
            and now - self._last_beat[1] < self.settings.worker_heartbeat_quiet_max_s
        ):
            return False
        await write_heartbeat(self.db, self.id, started_at=self.started_at, state=state)
        self._last_beat = (text, now)
        return True

    async def _heartbeat_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.options.heartbeat_s)
            if self._closing.is_set():
                return  # close() writes the last one
            self._changed.clear()
            try:
                await self.write_heartbeat(only_if_changed=True)
            except Exception:
                log.warning("heartbeat write failed", exc_info=True)

    async def sweep_stale(self) -> list[int]:
        return await recovery.sweep_stale(
            self.ctx,
            self.actor,
            stale_minutes=self.settings.stale_run_minutes,
            skip=frozenset(self._running),
        )

    async def _stale_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.options.stale_check_s)
            if self._closing.is_set():
                return
            try:
                await self.sweep_stale()
                await schedule_think_cycles(self.ctx)
            except Exception:
                log.warning("stale-run sweep or think cycle failed", exc_info=True)

    async def _schedule_loop(self) -> None:
        """Due schedules, held approvals whose cooling-off is over
        (``app.runner.held_approvals``) and missions' next steps, every ``schedule_poll_s``: a
        firing lands at most that long after its due time (docs/schedules.md), a
        mission's next step starts at most that long after the last one ended
        (docs/missions.md). Apart from the sweep, so a failing sweep cannot hold
        them back."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.options.schedule_poll_s)
            if self._closing.is_set():
                return
            try:
                await fire_due_schedules(self.ctx)
                await release_due_approvals(self.ctx)
                if self.settings.missions_run_steps:
                    await advance_missions(self.ctx, self.actor)
            except Exception:
                log.warning("schedule or mission pass failed", exc_info=True)

    # ----------------------------------------------------------------- one conversation

    async def run_once(self) -> Outcome | None:
        """Claim the oldest runnable conversation and run it (or refuse it).
        None when nothing is queued."""
        if self.stopping:
            return None
        if self.sandbox is not None and not self.sandbox.runs_allowed:
            return None  # MC_RUNNER_SANDBOX=required and no sandbox: the queue waits
        claimed = await self._claim()
        if claimed is None or isinstance(claimed, Outcome):
            return claimed
        return await self._run(claimed)

    async def _claim(self) -> Claim | Outcome | None:
        # Look first on a read connection: an idle worker must not take SQLite's write
        # lock every poll (the API's writes would queue behind it) nor touch the disk.
        async with self.db.read() as conn:
            if await claims.next_candidate(conn) is None:
                return None
        now = utcnow()
        async with transaction(self.ctx, self.actor, CLIENT) as tx:
            claim = await claims.next_candidate(tx.conn)
            if claim is None:
                return None
            refusal = await self._refusal(tx, claim, now)
            if refusal is not None:
                await self._refuse(tx, claim, refusal)
                outcome: Claim | Outcome = Outcome(
                    claim.conversation_id, "FAILED", refusal.reason, ran=False
                )
            else:
                if not await runs.claim(
                    tx.conn, claim.conversation_id, self.id, self.settings.worker_lease_s
                ):
                    return None  # cannot happen under BEGIN IMMEDIATE; never run it twice
                await transitions.start(tx, claim.task_id)
                await tx.emit(
                    EventType.CONVERSATION_STARTED,
                    "conversation",
                    claim.conversation_id,
                    {
                        "task_id": claim.task_id,
                        "agent_id": claim.agent_id,
                        "attempt": claim.attempt,
                        "worker": self.id,
                        "profile": claim.profile,
                    },
                )
                await tx.audit(
                    "conversation.started",
                    f"conversation:{claim.conversation_id}",
                    {"task_id": claim.task_id, "attempt": claim.attempt, "worker": self.id},
                )
                outcome = claim
        if isinstance(outcome, Claim):
            self._running[outcome.conversation_id] = asyncio.Event()
        self._changed.set()
        if isinstance(outcome, Outcome):
            log.info(
                "conversation refused",
                extra={"conversation_id": outcome.conversation_id, "reason": outcome.reason},
            )
        return outcome

    async def _refusal(self, tx: Tx, claim: Claim, now: datetime) -> Refusal | None:
        """Quotas, mission bounds, profile, circuit breaker: may this run start?"""
        if claim.mission_id is not None:
            mission = await accounting.mission_state(tx.conn, claim.mission_id)
            refusal = accounting.mission_refusal(mission, claim.mission_id)
            if refusal is not None:
                return refusal
        usage = await accounting.agent_usage_today(tx.conn, claim.agent_id, now)
        refusal = accounting.quota_refusal(quota_of(claim), usage)
        if refusal is not None:
            return Refusal(
                refusal.reason, refusal.escalation, {**refusal.details, "agent_id": claim.agent_id}
            )
        if self.catalog.get(claim.profile) is None:
            return Refusal(
                f"unknown_profile:{claim.profile}",
                "profile_error",
                {"profile": claim.profile, "profiles_file": str(self.catalog.path)},
            )
        # last: in half_open, allow() hands out the single trial run
        if not self.breakers.get(claim.profile).allow():
            snap = self.breakers.get(claim.profile).snapshot()
            return Refusal("circuit_open", "circuit_open", snap.as_dict())
        return None

    async def _refuse(self, tx: Tx, claim: Claim, refusal: Refusal) -> None:
        if not await runs.fail_queued(tx.conn, claim.conversation_id, refusal.reason):
            return
        await tx.emit(
            EventType.CONVERSATION_FAILED,
            "conversation",
            claim.conversation_id,
            {
                "task_id": claim.task_id,
                "agent_id": claim.agent_id,
                "reason": refusal.reason,
                "started": False,
            },
        )
        summary = await transitions.run_ended(
            tx, claim.task_id, succeeded=False, reason=refusal.reason
        )
        if refusal.escalation is not None:
            await tx.escalate(
                refusal.escalation,
                "conversation",
                claim.conversation_id,
                f"conversation {claim.conversation_id} of task {claim.task_id} was not"
                f" started: {refusal.reason}",
                {"task_id": claim.task_id, **refusal.details},
            )
        await tx.audit(
            "conversation.refused",
            f"conversation:{claim.conversation_id}",
            {"task_id": claim.task_id, "reason": refusal.reason, **summary},
            outcome="refused",
        )

    def _planner(self) -> Planner:
        return Planner(
            catalog=self.catalog,
            runtimes=self.runtimes,
            prices=self.prices,
            settings=self.settings,
            db=self.db,
            term_grace_s=self.options.term_grace_s,
            run_tmp_root=self.run_tmp_root,
        )

    async def _run(self, claim: Claim) -> Outcome:
        cancel = self._running.setdefault(claim.conversation_id, asyncio.Event())
        try:
            try:
                plan = await self._planner().plan(claim)
            except PlanError as exc:
                return await self._finish_unstarted(claim, exc)
            except Exception:
                log.exception(
                    "could not prepare a run", extra={"conversation_id": claim.conversation_id}
                )
                error = PlanError(
                    "internal_error: the worker could not prepare the run",
                    escalation="worker_error",
                    breaker_failure=False,
                )
                return await self._finish_unstarted(claim, error)
            if plan.prompt.found:
                log.warning(
                    "credentials removed from a prompt",
                    extra={"conversation_id": claim.conversation_id, "kinds": plan.prompt.redacted},
                )
            stop = Stop()
            ended = asyncio.Event()
            stream = plan.stream()

            def on_usage(usage: StreamUsage) -> None:
                refusal = plan.budget.check(usage)
                if refusal is not None and stop.kind is None:
                    self._stop(stop, cancel, "limit", refusal)

            stream.on_usage = on_usage
            live = LiveOutput(secret_values=plan.env.secret_values)
            attach_output(stream, live.add)

            def prepare_home(home: Path) -> None:
                plan.prepare_home(home)
                watch_home(stream, home)

            # the review gate: what the run changes in its workspace, for the reviewer
            before = None
            if await review_store.needs_review(self.db, claim.task_id):
                before = await asyncio.to_thread(workspace_diff.snapshot, plan.cwd)
            guard = asyncio.create_task(self._guard(claim, plan, stream, live, cancel, stop, ended))
            try:
                result = await run_confined(
                    plan.argv,
                    stdin_data=plan.prompt.text.encode("utf-8", "replace"),
                    env=plan.env,
                    cwd=plan.cwd,
                    limits=plan.limits,
                    cancel=cancel,
                    sandbox=self._sandbox_policy,
                    tmp_root=self.run_tmp_root,
                    rights=plan.rights,
                    stdout_sink=stream,
                    prepare_home=prepare_home,
                    finish_home=plan.keeper(stream),
                )
            finally:
                # never cancelled: it may be inside a write transaction; it sees
                # ``ended`` at its next wake-up (at most cancel_poll_s)
                ended.set()
                await guard
            await self._flush_live(claim, live)
            changes = None
            if before is not None:
                changes = output_gate(plan.env.secret_values)(
                    await asyncio.to_thread(workspace_diff.diff, before, plan.cwd)
                )
            return await self._finish(claim, plan, result, stop, stream, changes)
        finally:
            self._running.pop(claim.conversation_id, None)
            self._changed.set()

    # ----------------------------------------------------------------- during a run

    async def _guard(
        self,
        claim: Claim,
        plan: RunPlan,
        stream: StreamReader,
        live: LiveOutput,
        cancel: asyncio.Event,
        stop: Stop,
        ended: asyncio.Event,
    ) -> None:
        """Renew the lease; stop the run when it is cancelled, no longer ours, over a
        quota or bound, or the worker is stopping and the grace is over. Returns soon
        after ``ended`` is set."""
        loop = asyncio.get_running_loop()
        renew_every = self.settings.worker_lease_s / 3
        next_renew = loop.time() + renew_every
        stop_deadline: float | None = None
        while True:
            wait = min(self.options.cancel_poll_s, max(0.0, next_renew - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), wait)
            if ended.is_set():
                return
            await self._flush_live(claim, live)
            if self.stopping and stop_deadline is None:
                stop_deadline = loop.time() + self.options.stop_grace_s
            try:
                async with self.db.read() as conn:
                    status, owner = await runs.state(conn, claim.conversation_id)
                if status == "CANCELLED":
                    self._stop(stop, cancel, "cancelled")
                    return
                if status != "IN_PROGRESS" or owner != self.id:
                    self._stop(stop, cancel, "lease_lost")
                    return
                if loop.time() >= next_renew:
                    async with self.db.write() as conn:
                        renewed = await runs.renew_lease(
                            conn, claim.conversation_id, self.id, self.settings.worker_lease_s
                        )
                    next_renew = loop.time() + renew_every
                    if renewed:
                        refusal = await self._limits_while_running(claim, plan, stream)
                        if refusal is not None:
                            self._stop(stop, cancel, "limit", refusal)
                            return
            except Exception:
                log.warning(
                    "lease check failed; will retry",
                    extra={"conversation_id": claim.conversation_id},
                    exc_info=True,
                )
            if stop_deadline is not None and loop.time() >= stop_deadline:
                self._stop(stop, cancel, "worker_stopping")
                return

    async def _flush_live(self, claim: Claim, live: LiveOutput) -> None:
        """What the agent wrote since the last flush, as one ``conversation.output``
        event (gated); at most one write per guard turn. Never fails the run."""
        payload = live.drain()
        if payload is None:
            return
        try:
            async with transaction(self.ctx, self.actor, CLIENT) as tx:
                await tx.emit(
                    EventType.CONVERSATION_OUTPUT,
                    "conversation",
                    claim.conversation_id,
                    {"task_id": claim.task_id, "agent_id": claim.agent_id, **payload},
                )
        except Exception:
            log.warning(
                "live output not written",
                extra={"conversation_id": claim.conversation_id},
                exc_info=True,
            )

    @staticmethod
    def _stop(stop: Stop, cancel: asyncio.Event, kind: str, refusal: Refusal | None = None) -> None:
        stop.kind = kind
        stop.refusal = refusal
        cancel.set()

    async def _limits_while_running(
        self, claim: Claim, plan: RunPlan, stream: StreamReader
    ) -> Refusal | None:
        """Did other runs push the mission or the agent over while this one runs?
        Refreshes what this run has left from their recorded spend and checks the
        run's own usage so far against it."""
        mission = None
        async with self.db.read() as conn:
            if claim.mission_id is not None:
                mission = await accounting.mission_state(conn, claim.mission_id)
                refusal = accounting.mission_refusal(mission, claim.mission_id)
                if refusal is not None:
                    return refusal
            usage = await accounting.agent_usage_today(conn, claim.agent_id, utcnow())
        refusal = accounting.quota_refusal(quota_of(claim), usage, count_runs=False)
        if refusal is not None:
            return refusal
        plan.budget.refresh(usage, mission)
        return plan.budget.check(stream.usage)

    # ----------------------------------------------------------------- after a run

    def _record_breaker(self, profile: str, verdict: Verdict) -> tuple[list[BreakerSnapshot], bool]:
        """Feed the breaker; returns (breakers that opened, whether it closed again)."""
        breaker = self.breakers.get(profile)
        before = breaker.state
        if verdict.breaker == "failure":
            breaker.record_failure()
        elif verdict.breaker == "success":
            breaker.record_success()
        opened, self._opened[:] = list(self._opened), []
        closed_again = verdict.breaker == "success" and before is not BreakerState.CLOSED
        return opened, closed_again

    async def _circuit_events(
        self, tx: Tx, opened: list[BreakerSnapshot], closed_again: str | None
    ) -> None:
        for snap in opened:
            await tx.emit(EventType.RUNNER_CIRCUIT_OPENED, "runner", None, snap.as_dict())
            await tx.escalate(
                "circuit_open",
                "runner",
                None,
                f"the circuit breaker of profile '{snap.name}' opened after"
                f" {snap.consecutive_failures} consecutive failed runs; runs of this profile"
                " are refused until a trial run succeeds",
                snap.as_dict(),
            )
            await tx.audit("runner.circuit_opened", f"profile:{snap.name}", snap.as_dict())
        if closed_again is not None:
            snap = self.breakers.get(closed_again).snapshot()
            await tx.emit(EventType.RUNNER_CIRCUIT_CLOSED, "runner", None, snap.as_dict())

    async def _finish(
        self,
        claim: Claim,
        plan: RunPlan,
        run: RunResult,
        stop: Stop,
        stream: StreamReader,
        changes: str | None = None,
    ) -> Outcome:
        reply = with_stream_usage(plan.runtime.reply(run, stream), stream.usage, plan.budget)
        verdict = judge(run, reply, stop, plan.limits, stream.denied)
        record = RunRecord(
            transcript=transcript_of(reply, run, plan.limits, plan.env.secret_values),
            truncated=run.truncated,
            input_tokens=reply.total_input_tokens,
            output_tokens=reply.output_tokens,
            cost_usd=reply.cost_usd,
            exit_code=run.exit_code,
            session_id=stream.session_id or reply.session_id,
            runtime=plan.runtime.name,
            model=plan.model,
            cached_tokens=reply.cache_read_input_tokens,
        )
        opened, closed_again = self._record_breaker(claim.profile, verdict)
        status = await _retry(
            lambda: self._store_outcome(
                claim, plan, run, reply, verdict, record, opened, closed_again, stream, changes
            ),
            "finish",
        )
        self._changed.set()
        log.info(
            "conversation finished",
            extra={
                "conversation_id": claim.conversation_id,
                "status": status,
                "exit_code": run.exit_code,
                "duration_s": round(run.duration_s, 3),
                "tokens": reply.total_tokens,
            },
        )
        return Outcome(claim.conversation_id, status, verdict.reason, ran=run.started)

    async def _store_outcome(
        self,
        claim: Claim,
        plan: RunPlan,
        run: RunResult,
        reply: AgentReply,
        verdict: Verdict,
        record: RunRecord,
        opened: list[BreakerSnapshot],
        closed_again: bool,
        stream: StreamReader,
        changes: str | None = None,
    ) -> str:
        cid = claim.conversation_id
        async with transaction(self.ctx, self.actor, CLIENT) as tx:
            now = utcnow()
            if run.started:
                await accounting.record_usage(
                    tx.conn,
                    agent_id=claim.agent_id,
                    mission_id=claim.mission_id,
                    conversation_id=cid,
                    tokens=reply.total_tokens,
                    cost_usd=reply.cost_usd,
                    now=now,
                )
            status = verdict.status
            if status is not None and not await runs.finish(
                tx.conn, cid, self.id, status=status, reason=verdict.reason, record=record
            ):
                status = None  # ended by someone else after the run ended
            summary: dict[str, Any] = {}
            if status is None:
                await runs.attach_record(tx.conn, cid, self.id, record)
                status, _ = await runs.state(tx.conn, cid)
            elif status == "SUCCEEDED":
                await tx.emit(
                    EventType.CONVERSATION_SUCCEEDED,
                    "conversation",
                    cid,
                    {
                        "task_id": claim.task_id,
                        "agent_id": claim.agent_id,
                        "tokens": reply.total_tokens,
                        "cost_usd": reply.cost_usd,
                        "duration_s": round(run.duration_s, 3),
                    },
                )
                # the review gate: a task under review succeeds only once approved
                gated = await review.work_succeeded(tx, self.ctx, claim.task_id, cid, changes or "")
                summary = (
                    {"review": gated}
                    if gated is not None
                    else await transitions.run_ended(tx, claim.task_id, succeeded=True, reason=None)
                )
                await waiting.question_asked(tx, claim, record.transcript)
            else:
                await tx.emit(
                    EventType.CONVERSATION_FAILED,
                    "conversation",
                    cid,
                    {
                        "task_id": claim.task_id,
                        "agent_id": claim.agent_id,
                        "reason": verdict.reason,
                        "denied_tools": list(stream.denied),
                    },
                )
                if verdict.requeue:
                    new_id = await recovery.requeue_interrupted(
                        tx,
                        conversation_id=cid,
                        task_id=claim.task_id,
                        agent_id=claim.agent_id,
                        attempt=claim.attempt,
                        reason=recovery.STOP_REASON,
                    )
                    summary = {"requeued_as": new_id}
                else:
                    summary = await transitions.run_ended(
                        tx, claim.task_id, succeeded=False, reason=verdict.reason
                    )
                if verdict.escalation is not None:
                    await tx.escalate(
                        verdict.escalation,
                        "conversation",
                        cid,
                        f"conversation {cid} of task {claim.task_id} failed: {verdict.reason}",
                        {"task_id": claim.task_id, **verdict.escalation_details},
                    )
            if not run.group_clean:
                await tx.escalate(
                    "run_leftovers",
                    "conversation",
                    cid,
                    f"processes of conversation {cid} could not be verified gone after the run",
                    {"task_id": claim.task_id},
                )
            if plan.prompt.found:
                await tx.security_alert(
                    "Credential kept out of an agent prompt",
                    f"The prompt of conversation {cid} held credentials"
                    f" ({', '.join(sorted(plan.prompt.redacted))}); they were redacted before"
                    " the agent saw it.",
                )
            if claim.mission_id is not None and run.started:
                await mission_lifecycle.fail_if_over_bound(tx, claim.mission_id)
            await self._circuit_events(tx, opened, claim.profile if closed_again else None)
            await tx.audit(
                "conversation.finished",
                f"conversation:{cid}",
                {
                    "task_id": claim.task_id,
                    "status": status,
                    "reason": verdict.reason,
                    "exit_code": run.exit_code,
                    "tokens": reply.total_tokens,
                    "cost_usd": reply.cost_usd,
                    "truncated": run.truncated,
                    "prompt_redacted": plan.prompt.redacted,
                    "capability": plan.capability.as_dict(),
                    "denied_tools": list(stream.denied),
                    "session_id": stream.session_id or reply.session_id,
                    **summary,
                },
                outcome={"SUCCEEDED": "ok", "CANCELLED": "cancelled"}.get(status, "failed"),
            )
        return status

    async def _finish_unstarted(self, claim: Claim, error: PlanError) -> Outcome:
        """The run could not even be prepared (profile, credentials, workspace)."""
        verdict = Verdict(
            "FAILED",
            reason_text(error.reason),
            escalation=error.escalation,
            breaker="failure" if error.breaker_failure else None,
        )
        opened, _ = self._record_breaker(claim.profile, verdict)
        record = RunRecord("", False, 0, 0, 0.0, None)

        async def store() -> str:
            async with transaction(self.ctx, self.actor, CLIENT) as tx:
                if not await runs.finish(
                    tx.conn,
                    claim.conversation_id,
                    self.id,
                    status="FAILED",
                    reason=verdict.reason,
                    record=record,
                ):
                    return "CANCELLED"
                await tx.emit(
                    EventType.CONVERSATION_FAILED,
                    "conversation",
                    claim.conversation_id,
                    {
                        "task_id": claim.task_id,
                        "agent_id": claim.agent_id,
                        "reason": verdict.reason,
                    },
                )
                summary = await transitions.run_ended(
                    tx, claim.task_id, succeeded=False, reason=verdict.reason
                )
                await tx.escalate(
                    error.escalation,
                    "conversation",
                    claim.conversation_id,
                    f"conversation {claim.conversation_id} of task {claim.task_id} could not"
                    f" start: {verdict.reason}",
                    {"task_id": claim.task_id, "profile": claim.profile},
                )
                await self._circuit_events(tx, opened, None)
                await tx.audit(
                    "conversation.finished",
                    f"conversation:{claim.conversation_id}",
                    {
                        "task_id": claim.task_id,
                        "status": "FAILED",
                        "reason": verdict.reason,
                        **summary,
                    },
                    outcome="failed",
                )
                return "FAILED"

        status = await _retry(store, "finish")
        log.warning(
            "conversation could not start",
            extra={"conversation_id": claim.conversation_id, "reason": verdict.reason},
        )
        return Outcome(claim.conversation_id, status, verdict.reason, ran=False)


# --------------------------------------------------------------------------- command


async def run_worker(
    settings: Settings, *, name: str, once: bool, stop_grace_s: float = 10.0
) -> int:
    """``missionctl worker``: 0 on a clean stop, 2 when it cannot start."""
    if not 0 <= stop_grace_s <= 3600:
        print("missionctl worker: --stop-grace must be between 0 and 3600", file=sys.stderr)
        return 2
    try:
        worker = Worker(settings, WorkerOptions(name=name, stop_grace_s=stop_grace_s))
        await worker.start()
    except (ProfileError, WorkerIdentityError, WorkerStartError, MigrationError) as exc:
        print(f"missionctl worker: {exc}", file=sys.stderr)
        return 2
    if worker.sandbox is not None and not worker.sandbox.runs_allowed:
        print(
            "missionctl worker: refusing to run agents: MC_RUNNER_SANDBOX=required but the"
            f" filesystem sandbox is not enforced ({worker.sandbox.reason});"
            " see 'missionctl runner sandbox-check'",
            file=sys.stderr,
        )
        if once:
            await worker.close()
            return 2
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.request_stop)
    try:
        if once:
            outcome = await worker.serve(once=True)
            if outcome is None:
                print("no queued conversation")
            else:
                reason = f" ({outcome.reason})" if outcome.reason else ""
                print(f"conversation {outcome.conversation_id}: {outcome.status}{reason}")
        else:
            await worker.serve()
    finally:
        worker.notifier.stopping()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await worker.close()
    return 0
