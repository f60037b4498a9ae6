"""Shared helpers of the worker tests (no tests here).

Tasks, missions and their runs are made and moved by the domains, with the calls
the API and the worker make (docs/architecture.md, "One owner per state"): a
task through the task service (pre-flight, its run queued when it is ready), a
mission proposed and approved through the missions domain, a run claimed and
ended through the conversations domain and ``app/tasks/transitions.py``. Only
agents, their memory and projects are plain SQL rows (:class:`Rows`), and a few
states no domain ever makes are written raw by :meth:`Rows.raw_task_row`, which
says why. Agents run from a profiles file written by the test, fake agents are
small Python scripts, and the worker runs in-process with short intervals
unless a test needs a real ``missionctl worker`` process.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

from app.access.caller import Caller
from app.auth import service as auth_service
from app.conversations import lifecycle as runs
from app.conversations.lifecycle import RunRecord
from app.conversations.schemas import FollowUp
from app.core.clock import now_iso, utcnow
from app.core.context import AppContext
from app.core.database import Database
from app.core.errors import ApiError
from app.core.migrations import migrate
from app.core.settings import Settings
from app.events.transaction import transaction
from app.missions import approval as mission_approval
from app.missions import lifecycle as missions
from app.missions import service as missions_service
from app.missions.schemas import (
    MissionApproval,
    MissionBounds,
    MissionCreate,
    MissionDecision,
    MissionStep,
)
from app.runner.worker import Worker, WorkerOptions
from app.security.principal import Principal, Scope
from app.tasks import follow_up, transitions
from app.tasks import service as tasks_service
from app.tasks.schemas import TaskCreate, TaskStatus
from app.wiring import build_context
from tests.support.api import ADMIN_PASSWORD, caller
from tests.support.cli import cli_env

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]

FAST = WorkerOptions(
    name="t",
    poll_s=0.05,
    heartbeat_s=0.2,
    cancel_poll_s=0.05,
    stale_check_s=3600.0,
    stop_grace_s=0.5,
    breaker_failures=3,
    breaker_cool_down_s=300.0,
    term_grace_s=0.2,
)

DEMO_ARGV = ["{python}", "-I", "-m", "app.runner.demo_agent", "--model", "{model}"]

#: a fake agent's last line: print a claude-json result whose text is ``reply``
RESULT_CODE = """
def emit(reply, tokens_in=3, tokens_out=4, cost=0.001, error=False):
    import json, sys
    sys.stdout.write(json.dumps({
        "type": "result", "subtype": "error_during_execution" if error else "success",
        "is_error": error, "result": reply, "session_id": "s", "num_turns": 1,
        "total_cost_usd": cost,
        "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
    }) + "\\n")
    sys.stdout.flush()
"""


def write_agent(tmp_path: Path, name: str, body: str) -> Path:
    """A fake agent script; ``emit(reply, ...)`` is available to ``body``."""
    folder = tmp_path / "agents"
    folder.mkdir(exist_ok=True)
    script = folder / f"{name}.py"
    script.write_text(RESULT_CODE + "\n" + textwrap.dedent(body))
    return script


def profile(argv: list[str], **limits: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "wall_clock_seconds": 20,
        "cpu_seconds": 30,
        "address_space_mb": 1024,
        "processes": 64,
        "open_files": 64,
        "term_grace_seconds": 0.2,
    }
    values.update(limits)
    return {"argv": argv, "limits": values}


def script_profile(script: Path, **limits: Any) -> dict[str, Any]:
    return profile(["{python}", "-I", str(script)], **limits)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


def write_profiles(tmp_path: Path, profiles: dict[str, dict[str, Any]]) -> Path:
    """A profiles file the worker accepts (not group/world-writable, outside /etc)."""
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o755, exist_ok=True)
    folder.chmod(0o755)
    lines: list[str] = []
    for name, spec in profiles.items():
        lines.append(f"[profiles.{name}]")
        for key, value in spec.items():
            if key != "limits":
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append(f"[profiles.{name}.limits]")
        for key, value in spec.get("limits", {}).items():
            lines.append(f"{key} = {_toml_value(value)}")
    path = folder / "profiles.toml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)
    return path


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_path": tmp_path / "mc.db",
        "state_dir": tmp_path / "state",
        "profiles_path": tmp_path / "etc" / "profiles.toml",
        "worker_lease_s": 3.0,
        # the fake agents are scripts in tmp_path/agents and some write journals in
        # tmp_path: outside what the Landlock sandbox allows. The sandbox has its own
        # tests (test_sandbox.py), which pass runner_sandbox="auto"/"required".
        "runner_sandbox": "off",
    }
    values.update(overrides)
    return Settings(**values)


#: the worker that claims and ends runs in a test's setup (not the test's worker)
ELSEWHERE = "elsewhere:w"

_MISSION_STATUSES = frozenset({"proposed", "approved", "running", "rejected", "cancelled"})


class Rows:
    """The test database: setup through the domains (agents, memory and projects as
    plain rows) and synchronous SQL for assertions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # the test's settings (make_settings), with mission ceilings an operator
        # raised so that a test may ask for any bound
        self.settings = make_settings(
            path.parent,
            database_path=path,
            mission_max_cost_usd=1000.0,
            mission_max_tokens=10**9,
            mission_max_steps=100,
            mission_max_step_minutes=600,
        )
        migrate(path, path.parent / "backups")

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        with self.connect() as conn:
            cursor = conn.execute(sql, params)
            return int(cursor.lastrowid or 0)

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        with self.connect() as conn:
            row: sqlite3.Row | None = conn.execute(sql, params).fetchone()
            return row

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self.connect() as conn:
            return list(conn.execute(sql, params).fetchall())

    def value(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else row[0]

    # --- setup ---------------------------------------------------------------
    # agents, their memory and projects are plain rows; tasks, missions and runs are
    # made and moved by their domains (below)

    def agent(
        self,
        name: str = "agent",
        *,
        profile: str = "demo",
        model: str = "demo-1",
        status: str = "active",
        tokens: int = 1_000_000,
        cost: float = 100.0,
        runs: int = 1000,
        identity: str | None = None,
        tools: tuple[str, ...] = (),
        shell: bool = False,
    ) -> int:
        now = now_iso()
        agent_id = self.execute(
            "INSERT INTO agents (name, role, model, status, profile, quota_tokens_per_day,"
            " quota_cost_usd_per_day, quota_runs_per_day, shell_access, allowed_tools,"
            " created_at, updated_at) VALUES (?, 'tester', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                model,
                status,
                profile,
                tokens,
                cost,
                runs,
                int(shell),
                json.dumps(list(tools)),
                now,
                now,
            ),
        )
        if identity is not None:
            self.execute(
                "INSERT INTO agent_identities (agent_id, version, text, created_by, created_at)"
                " VALUES (?, 1, ?, 'test', ?)",
                (agent_id, identity, now),
            )
            self.execute("UPDATE agents SET identity_version = 1 WHERE id = ?", (agent_id,))
        return agent_id

    def memory(self, agent_id: int, content: str) -> int:
        return self.execute(
            "INSERT INTO agent_memory (agent_id, content, created_by, created_at)"
            " VALUES (?, ?, 'test', ?)",
            (agent_id, content, now_iso()),
        )

    def project(self, name: str = "proj", documents: tuple[tuple[str, str], ...] = ()) -> int:
        now = now_iso()
        project_id = self.execute(
            "INSERT INTO projects (name, created_at, updated_at) VALUES (?, ?, ?)",
            (name, now, now),
        )
        for title, body in documents:
            self.execute(
                "INSERT INTO project_documents (project_id, title, body, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (project_id, title, body, now, now),
            )
        return project_id

    def mission(
        self,
        *,
        status: str = "running",
        cost: float = 10.0,
        tokens: int = 500_000,
        step_minutes: int = 15,
        spent_cost: float = 0.0,
        spent_tokens: int = 0,
        goal: str = "Ship the thing",
        steps: list[dict[str, Any]] | None = None,
    ) -> int:
        """A mission as the missions domain makes one: proposed by alice
        (``propose_mission``), approved by bob (``approve_mission``, the two-person
        rule), rejected or cancelled by alice. ``running`` is ``approved``: the first
        task the test creates for it starts it (``lifecycle.task_created``), as in
        the domain. ``spent_*``: other runs' usage, added through the domain
        (:meth:`spend`); a mission already at a bound refuses new tasks (pre-flight),
        so a test that needs one creates its task first and spends afterwards."""
        if status not in _MISSION_STATUSES:
            raise ValueError(f"a test mission starts {sorted(_MISSION_STATUSES)}, not {status}")
        spec = MissionCreate(
            title="m",
            goal=goal,
            steps=[
                MissionStep.model_validate(step)
                for step in steps or [{"title": "step one", "agent_id": 1, "instructions": ""}]
            ],
            bounds=MissionBounds(cost_usd=cost, steps=10, step_minutes=step_minutes, tokens=tokens),
        )

        async def make(ctx: AppContext) -> int:
            alice, bob = await _people(ctx)
            view = await missions_service.propose_mission(ctx, spec, alice)
            if status in ("approved", "running"):
                _, held = await mission_approval.approve_mission(
                    ctx, view.id, MissionApproval(), bob
                )
                assert not held, "two admins: the approval takes effect at once"
            elif status == "rejected":
                await missions_service.reject_mission(ctx, view.id, MissionDecision(), alice)
            elif status == "cancelled":
                await missions_service.cancel_mission(ctx, view.id, MissionDecision(), alice)
            return view.id

        mission_id = self._run(make)
        if spent_cost or spent_tokens:
            self.spend(mission_id, tokens=spent_tokens, cost=spent_cost)
        return mission_id

    def spend(self, mission_id: int, *, tokens: int = 0, cost: float = 0.0) -> None:
        """Other runs' usage grows the mission's spending (the missions domain's call)."""

        async def add(ctx: AppContext) -> None:
            async with transaction(ctx, "worker:other", "test") as tx:
                await missions.add_spend(
                    tx.conn, mission_id, tokens=tokens, cost_usd=cost, at=now_iso()
                )

        self._run(add)

    def task(
        self,
        agent_id: int,
        title: str = "task",
        description: str = "",
        *,
        mission_id: int | None = None,
        mission_step: int | None = None,
        project_id: int | None = None,
        status: str = "queued",
        depends_on: tuple[int, ...] = (),
        needs_shell: bool = False,
        approval: str = "",
    ) -> tuple[int, int | None]:
        """A task as the API makes one (``tasks_service.submit_task``: pre-flight, its
        run queued when it is ready), asked for by alice, an admin in the web UI.
        ``approval="pending"``: asked for by an operator instead, so a task whose
        run would get a shell waits for a person (app/tasks/approval.py).

        ``status`` other than queued is reached through the domain's moves: blocked
        and cancelled as a person's status change (``change_task_status``),
        in_progress as a run another worker claimed (:func:`claimed_run`), succeeded
        and failed as that run's end (:meth:`end_run`).

        Returns the task id and its run: the QUEUED or IN_PROGRESS conversation, the
        run that ended it (succeeded, failed), or None (it waits for a dependency or
        a person, or its run was cancelled)."""
        spec = TaskCreate(
            title=title,
            description=description,
            agent_id=agent_id,
            mission_id=mission_id,
            mission_step=mission_step,
            project_id=project_id,
            depends_on=list(depends_on),
            needs_shell=needs_shell,
        )
        who = caller("alice", "test", scope=Scope.OPERATE if approval == "pending" else Scope.ADMIN)

        async def make(ctx: AppContext) -> tuple[int, int | None]:
            try:
                view, _ = await tasks_service.submit_task(ctx, spec, who)
            except ApiError as exc:
                raise AssertionError(f"{exc.code}: {exc.message} {exc.details}") from None
            if view.approval != approval:
                raise AssertionError(f"the task's approval is {view.approval!r}, not {approval!r}")
            return view.id, view.active_conversation_id

        task_id, run = self._run(make)
        if status in ("blocked", "cancelled"):
            self.move(task_id, status)
            run = None
        elif status == "in_progress":
            run = self._run(lambda ctx: _claim(ctx, task_id, ELSEWHERE, at=None, attempt=1))
        elif status in ("succeeded", "failed"):
            run = self.end_run(task_id, succeeded=status == "succeeded")
        elif status != "queued":
            raise ValueError(f"no way to a {status} task")
        return task_id, run

    def move(self, task_id: int, status: str) -> None:
        """A person changes the task's status (the API's call, ``change_task_status``):
        blocked or cancelled (its run is cancelled), queued again (a run is queued)."""

        async def change(ctx: AppContext) -> None:
            await tasks_service.change_task_status(
                ctx, task_id, TaskStatus(status), actor="user:alice", client="test"
            )

        self._run(change)

    def queue(self, task_id: int) -> int:
        """The run of a blocked task: a person moves it back to queued, which queues
        its run through the one gate (``transitions.queue_if_ready``). Returns it."""
        self.move(task_id, "queued")
        run = self.value(
            "SELECT id FROM conversations WHERE task_id = ? AND status = 'QUEUED'", (task_id,)
        )
        assert run is not None, f"task {task_id} got no run (a dependency? a person?)"
        return int(run)

    def end_run(
        self,
        task_id: int,
        *,
        succeeded: bool = True,
        transcript: str = "",
        session_id: str | None = None,
        owner: str = ELSEWHERE,
    ) -> int:
        """The task's run ended by another worker, as the worker ends one: claimed
        (unless it already runs), the task started, the run finished through the
        conversations domain with ``transcript`` (and the CLI's ``session_id``), and
        the task ended through ``transitions.run_ended`` with every consequence
        (dependents queued or blocked, the mission, the review gate). Returns the
        run's id."""
        record = RunRecord(
            transcript=transcript,
            truncated=False,
            input_tokens=0,
            output_tokens=0,
            cost_usd=0.0,
            exit_code=0 if succeeded else 1,
            session_id=session_id,
        )

        async def end(ctx: AppContext) -> int:
            if await _run_of(ctx, task_id, "IN_PROGRESS") is None:
                await _claim(ctx, task_id, owner, at=None, attempt=1)
            running = await _run_of(ctx, task_id, "IN_PROGRESS")
            assert running is not None
            run, lease_owner = running
            assert lease_owner is not None
            reason = None if succeeded else "failed"
            async with transaction(ctx, f"worker:{lease_owner}", "test") as tx:
                assert await runs.finish(
                    tx.conn,
                    run,
                    lease_owner,
                    status="SUCCEEDED" if succeeded else "FAILED",
                    reason=reason,
                    record=record,
                )
                await transitions.run_ended(tx, task_id, succeeded=succeeded, reason=reason)
            return run

        return self._run(end)

    def follow_up(self, conversation_id: int, text: str) -> tuple[int, int | None]:
        """alice replies to a finished run (``follow_up.follow_up``, the run page's
        reply): a task that resumes the run's CLI session. Returns it and its run."""

        async def reply(ctx: AppContext) -> tuple[int, int | None]:
            view = await follow_up.follow_up(
                ctx, conversation_id, FollowUp(text=text), caller("alice", "test")
            )
            return view.id, view.active_conversation_id

        return self._run(reply)

    def raw_task_row(
        self,
        agent_id: int,
        title: str = "task",
        description: str = "",
        *,
        project_id: int | None = None,
        status: str = "queued",
        deleted: bool = False,
    ) -> tuple[int, int]:
        """A task row and a QUEUED run written with plain SQL, around the task domain.

        Only for a state the domain never makes, which the worker must still
        survive: a cancelled, blocked or deleted task whose run is still QUEUED (the
        domain cancels the run with the move: the claim query's own filter is what is
        tested), or a task whose text holds a credential (pre-flight refuses one: the
        prompt gate is the defence behind it). Everything else uses :meth:`task`."""
        now = now_iso()
        task_id = self.execute(
            "INSERT INTO tasks (title, description, agent_id, project_id, status, created_by,"
            " created_at, updated_at, deleted_at) VALUES (?, ?, ?, ?, ?, 'test', ?, ?, ?)",
            (title, description, agent_id, project_id, status, now, now, now if deleted else None),
        )
        conversation_id = self.execute(
            "INSERT INTO conversations (task_id, agent_id, status, created_at, updated_at)"
            " VALUES (?, ?, 'QUEUED', ?, ?)",
            (task_id, agent_id, now, now),
        )
        return task_id, conversation_id

    def _run(self, action: Callable[[AppContext], Awaitable[T]]) -> T:
        """Run a domain call on its own context and event loop, in a thread: the
        helpers stay synchronous in sync and async tests alike."""
        return _in_thread(_with_context(self.settings, action))

    # --- reading -------------------------------------------------------------

    def conversation(self, conversation_id: int) -> sqlite3.Row:
        row = self.one("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        assert row is not None
        return row

    def task_status(self, task_id: int) -> str:
        return str(self.value("SELECT status FROM tasks WHERE id = ?", (task_id,)))

    def escalations(self, kind: str | None = None) -> list[sqlite3.Row]:
        if kind is None:
            return self.all("SELECT * FROM escalations ORDER BY id")
        return self.all("SELECT * FROM escalations WHERE kind = ? ORDER BY id", (kind,))

    def events(self, event_type: str | None = None) -> list[sqlite3.Row]:
        if event_type is None:
            return self.all("SELECT * FROM events ORDER BY id")
        return self.all("SELECT * FROM events WHERE type = ? ORDER BY id", (event_type,))

    def heartbeat_state(self, worker_id: str) -> dict[str, Any]:
        text = self.value("SELECT state FROM worker_heartbeats WHERE worker_id = ?", (worker_id,))
        assert text is not None, "no heartbeat row"
        state: dict[str, Any] = json.loads(text)
        return state


# --- moves through the domains ---------------------------------------------------


async def cancel_task(worker: Worker, task_id: int, person: str = "alice") -> None:
    """What the API does when a person cancels a task (the task service): the task
    is cancelled and its run with it."""
    await tasks_service.cancel_task(worker.ctx, task_id, caller(person, "test"))


async def add_mission_spend(
    worker: Worker, mission_id: int, *, tokens: int = 0, cost_usd: float = 0.0
) -> None:
    """Other runs' usage grows the mission's spending (the missions domain's call)."""
    async with transaction(worker.ctx, "worker:other", "test") as tx:
        await missions.add_spend(
            tx.conn, mission_id, tokens=tokens, cost_usd=cost_usd, at=now_iso()
        )


async def claimed_run(
    path: Path, task_id: int, agent_id: int, owner: str, *, at: datetime, attempt: int = 1
) -> int:
    """A run that worker ``owner`` claimed at ``at`` (its lease and heartbeat from
    then) and never ended: the run the task domain queued for the task, claimed
    through the conversations domain, its task started. With ``attempt`` > 1 the
    earlier claims were interrupted and the run queued again, as recovery does.
    Returns its id."""
    settings = make_settings(path.parent, database_path=path)
    return await _with_context(
        settings,
        lambda ctx: _claim(ctx, task_id, owner, at=at, attempt=attempt, agent_id=agent_id),
    )


# --- the domain calls behind the helpers -------------------------------------------


async def _with_context(settings: Settings, action: Callable[[AppContext], Awaitable[T]]) -> T:
    """``action`` on a context of its own (as every process builds one), closed after."""
    db = Database(settings.database_path, readers=1, busy_timeout_ms=10_000)
    await db.open()
    try:
        return await action(build_context(settings, db, b""))
    finally:
        await db.close()


def _in_thread(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on an event loop of its own in a thread: callable from a sync test
    and from within an async test's running loop alike."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


async def _people(ctx: AppContext) -> tuple[Caller, Caller]:
    """alice and bob, two admins logged in to the web UI (users made by the auth
    domain): one proposes, the other approves (the two-person rule)."""
    callers: list[Caller] = []
    for name in ("alice", "bob"):
        row = await ctx.db.fetch_one("SELECT id FROM users WHERE username = ?", (name,))
        if row is not None:
            user_id = int(row[0])
        else:
            user = await auth_service.create_user(
                ctx.db,
                username=name,
                password=ADMIN_PASSWORD,
                role=Scope.ADMIN,
                actor="test",
                client="test",
            )
            user_id = user.id
        principal = Principal(
            kind="session", scope=Scope.ADMIN, name=name, user_id=user_id, session_id=user_id
        )
        callers.append(Caller(principal, "test"))
    return callers[0], callers[1]


async def _run_of(ctx: AppContext, task_id: int, status: str) -> tuple[int, str | None] | None:
    """The task's run in ``status`` (QUEUED or IN_PROGRESS: at most one), with its
    lease owner."""
    row = await ctx.db.fetch_one(
        "SELECT id, lease_owner FROM conversations WHERE task_id = ? AND status = ?",
        (task_id, status),
    )
    return None if row is None else (int(row[0]), row[1])


async def _claim(
    ctx: AppContext,
    task_id: int,
    owner: str,
    *,
    at: datetime | None,
    attempt: int,
    agent_id: int | None = None,
) -> int:
    """Worker ``owner`` claims the task's queued run (at ``at``: its lease and
    heartbeat from then) and starts the task, as the worker does; ``attempt`` > 1:
    the earlier claims were interrupted, failed and re-queued, as recovery does.
    ``agent_id``: the agent the test expects the run to be for."""
    row = await ctx.db.fetch_one(
        "SELECT id, agent_id FROM conversations WHERE task_id = ? AND status = 'QUEUED'",
        (task_id,),
    )
    assert row is not None, f"task {task_id} has no queued run"
    run, agent = int(row[0]), int(row[1])
    assert agent_id in (None, agent), f"the run is agent {agent}'s, not agent {agent_id}'s"
    async with transaction(ctx, f"worker:{owner}", "test") as tx:
        for earlier in range(1, attempt):
            assert await runs.claim(tx.conn, run, owner, 60.0)
            await transitions.start(tx, task_id)
            reason = "worker restarted during the run"
            assert await runs.fail_in_progress(tx.conn, run, reason, owner=owner)
            run = await runs.requeue(tx.conn, task_id, agent, earlier)
        with mock.patch.object(runs, "utcnow", return_value=at or utcnow()):
            assert await runs.claim(tx.conn, run, owner, 60.0)
        await transitions.start(tx, task_id)
    return run


@asynccontextmanager
async def running_worker(settings: Settings, **options: Any) -> AsyncIterator[Worker]:
    """A started in-process worker (short intervals), closed afterwards."""
    worker = Worker(settings, replace(FAST, **options))
    await worker.start()
    try:
        yield worker
    finally:
        await worker.close()


def worker_process(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """A real ``missionctl worker`` process on the test's database and profiles."""
    environment = cli_env(
        tmp_path,
        MC_PROFILES_PATH=str(tmp_path / "etc" / "profiles.toml"),
        MC_WORKER_LEASE_S="3",
        **{"MC_RUNNER_SANDBOX": "off", **env},
    )
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", *args],
        env=environment,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for(predicate: Any, *, timeout: float, interval: float = 0.05, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15) -> str:
    """SIGTERM, wait, return the output (kill if it does not stop)."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return process.stdout.read().decode() if process.stdout else ""


def env_without_mc() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MC_")}
