"""Shared helpers of the worker tests (no tests here).

The starting rows (agents, missions, tasks, their queued runs) are created with
plain SQL, without pre-flight; what happens to them afterwards goes through the
domains, as in production: a person cancelling a task through the task service
(:func:`cancel_task`), other runs adding to a mission's spending through the
missions domain (:func:`add_mission_spend`), a run another worker claimed and
left (:func:`claimed_run`). Agents run from a profiles file written by the test,
fake agents are small Python scripts, and the worker runs in-process with short
intervals unless a test needs a real ``missionctl worker`` process.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import aiosqlite

from app.conversations import lifecycle as runs
from app.core.clock import now_iso
from app.core.migrations import migrate
from app.core.settings import Settings
from app.events.transaction import Tx, transaction
from app.missions import lifecycle as missions
from app.runner.worker import Worker, WorkerOptions
from app.tasks import service as tasks_service
from app.tasks import transitions
from tests.support.api import caller
from tests.support.cli import cli_env

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


class Rows:
    """Synchronous SQL on the test database: setup and assertions."""

    def __init__(self, path: Path) -> None:
        self.path = path
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
        now = now_iso()
        return self.execute(
            "INSERT INTO missions (title, goal, steps, status, proposed_by, bound_cost_usd,"
            " bound_steps, bound_step_minutes, bound_tokens, spent_cost_usd, spent_tokens,"
            " created_at, updated_at) VALUES ('m', ?, ?, ?, 'test', ?, 10, ?, ?, ?, ?, ?, ?)",
            (
                goal,
                json.dumps(steps or [{"title": "step one", "agent_id": 1, "instructions": ""}]),
                status,
                cost,
                step_minutes,
                tokens,
                spent_cost,
                spent_tokens,
                now,
                now,
            ),
        )

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
        queue: bool = True,
        needs_shell: bool = False,
        approval: str = "",
    ) -> tuple[int, int | None]:
        """A task and (unless ``queue`` is false) its QUEUED conversation;
        ``approval="pending"``: it waits for a person (app/tasks/approval.py)."""
        now = now_iso()
        task_id = self.execute(
            "INSERT INTO tasks (title, description, agent_id, mission_id, mission_step,"
            " project_id, status, needs_shell, approval, created_by, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'test', ?, ?)",
            (
                title,
                description,
                agent_id,
                mission_id,
                mission_step,
                project_id,
                status,
                int(needs_shell),
                approval,
                now,
                now,
            ),
        )
        for dep in depends_on:
            self.execute(
                "INSERT INTO task_dependencies (task_id, depends_on) VALUES (?, ?)", (task_id, dep)
            )
        conversation_id = self.queue(task_id, agent_id) if queue else None
        return task_id, conversation_id

    def queue(self, task_id: int, agent_id: int) -> int:
        now = now_iso()
        return self.execute(
            "INSERT INTO conversations (task_id, agent_id, status, created_at, updated_at)"
            " VALUES (?, ?, 'QUEUED', ?, ?)",
            (task_id, agent_id, now, now),
        )

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
    then) and never ended: queued by the task domain (a re-queue when ``attempt`` > 1),
    claimed through the conversations domain, its task started. Returns its id."""
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("BEGIN IMMEDIATE")
        tx = Tx(conn, f"worker:{owner}", "test")
        if attempt > 1:
            conversation_id = await runs.requeue(conn, task_id, agent_id, attempt - 1)
        else:
            conversation_id = await transitions.queue_run(tx, task_id, agent_id)
        with mock.patch.object(runs, "utcnow", return_value=at):
            assert await runs.claim(conn, conversation_id, owner, 60.0)
        await transitions.start(tx, task_id)
        await conn.execute("COMMIT")
    return conversation_id


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
