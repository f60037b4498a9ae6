"""The agents' per-run filesystem sandbox (Landlock; app/runner/sandbox.py).

Real processes, a real SQLite file and a real secrets file in the state directory.
Each test names the control it proves; removing it makes the test fail (see the
report in docs/runner-confinement.md). Tests that need the kernel feature skip
with the reason when Landlock is unavailable here.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.care.sandbox import sandbox_findings, sandbox_summary
from app.core.clock import now_iso
from app.core.context import AppContext
from app.profiles.profiles import Limits
from app.runner import sandbox as sandbox_module
from app.runner.heartbeat import write_heartbeat
from app.runner.process import run_confined
from app.runner.sandbox import (
    FS_IOCTL_DEV,
    FS_REFER,
    FS_TRUNCATE,
    SANDBOX_FAILED_EXIT,
    LandlockStatus,
    SandboxPolicy,
    SandboxReport,
    default_policy,
    handled_fs_rights,
    landlock_status,
)
from app.runner.worker import run_worker
from tests.support.cli import cli_env
from tests.support.worker import (
    REPO,
    RESULT_CODE,
    Rows,
    make_settings,
    running_worker,
    write_profiles,
)

LANDLOCK = landlock_status()
needs_landlock = pytest.mark.skipif(
    LANDLOCK.abi < 1, reason=f"no Landlock in this kernel: {LANDLOCK.reason}"
)
LIMITS = Limits(cpu_seconds=20, address_space_mb=1024, open_files=64, wall_clock_seconds=20)
SECRET = "server-key-0123456789abcdef"
#: an existing file under /usr (opened for writing by the probe; never written)
USR_FILE = next(
    str(p)
    for p in (Path("/usr/lib/os-release"), Path("/usr/share/common-licenses/GPL-3"))
    if p.is_file()
)

#: what every probing agent does: try each path, print {name: "ok" | errno name}
PROBE = r"""
import errno, json, os, subprocess, sys

def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))

def read(path):
    with open(path, "rb") as handle:
        return handle.read()

def create(path):
    with open(path, "w") as handle:
        handle.write("x")

targets = json.loads(os.environ.get("PROBE_TARGETS") or sys.argv[-1])
result = {}
for name, path in targets["read"].items():
    result["read:" + name] = attempt(lambda: read(path))
for name, path in targets["write"].items():
    result["write:" + name] = attempt(lambda: create(path))
for name, path in targets["open"].items():
    # opened for writing, nothing written (O_TRUNC only on /dev/null)
    flags = os.O_WRONLY | (os.O_TRUNC if path == "/dev/null" else os.O_APPEND)
    result["open:" + name] = attempt(lambda: os.close(os.open(path, flags)))
result["write:TMPDIR"] = attempt(lambda: create(os.path.join(os.environ["TMPDIR"], "t")))
result["exec:/bin/sh"] = attempt(
    lambda: subprocess.run(["/bin/sh", "-c", "ls /usr/bin > /dev/null"], check=True)
)
"""


class State:
    """A state directory as the worker has it: the SQLite database, a secret, a
    workspace; agents in a directory of their own."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.state = tmp_path / "state"
        self.db = self.state / "mission-control.db"
        self.secrets = self.state / "secrets"
        self.secret = self.secrets / "server.key"
        self.workspace = self.state / "workspaces" / "project-1"
        self.run_tmp = self.state / "run-tmp"
        self.agents = tmp_path / "agents"
        for path in (self.secrets, self.workspace, self.run_tmp, self.agents):
            path.mkdir(parents=True, mode=0o700, exist_ok=True)
        with sqlite3.connect(self.db) as conn:
            conn.execute("CREATE TABLE t (secret TEXT)")
            conn.execute("INSERT INTO t VALUES ('in the database')")
        self.db.chmod(0o600)
        self.secret.write_text(SECRET)
        self.secret.chmod(0o600)
        self.marker = f"probe-{os.getpid()}"

    def policy(self) -> SandboxPolicy:
        return default_policy(
            database_path=self.db,
            state_dir=self.state,
            secrets_dir=self.secrets,
            backups_dir=self.state / "backups",
        ).with_paths(read_exec=[str(self.agents)])

    def targets(self) -> dict[str, dict[str, str]]:
        return {
            "read": {"database": str(self.db), "secret": str(self.secret)},
            "write": {
                "/etc": f"/etc/{self.marker}",
                "/usr": f"/usr/{self.marker}",
                "/tmp": f"/tmp/{self.marker}",
                "state_dir": str(self.state / self.marker),
                "workspace": str(self.workspace / self.marker),
            },
            "open": {"/etc file": "/etc/passwd", "/usr file": USR_FILE, "/dev/null": "/dev/null"},
        }

    def agent(self, name: str, code: str) -> list[str]:
        script = self.agents / f"{name}.py"
        script.write_text(textwrap.dedent(code))
        return [sys.executable, "-I", str(script)]

    def cleanup(self) -> None:
        for directory in ("/etc", "/usr", "/tmp"):
            path = Path(directory) / self.marker
            if path.exists():
                path.unlink()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    made = State(tmp_path)
    yield made
    made.cleanup()


async def probe_run(state: State, policy: SandboxPolicy | None) -> dict[str, str]:
    argv = state.agent("probe", PROBE + "\nprint(json.dumps(result))\n")
    run = await run_confined(
        [*argv, json.dumps(state.targets())],
        stdin_data=b"",
        env={},
        cwd=state.workspace,
        limits=LIMITS,
        sandbox=policy,
        tmp_root=state.run_tmp,
    )
    assert run.started and run.exit_code == 0, (run.reason, run.stderr[-2000:])
    assert run.sandboxed is (policy is not None)
    result: dict[str, str] = json.loads(run.stdout)
    return result


# --------------------------------------------------------------------------- ABI


def test_every_right_the_abi_knows_is_handled() -> None:
    """The ruleset handles all filesystem rights of the kernel's ABI, masked by version."""
    assert handled_fs_rights(0) == 0
    assert handled_fs_rights(1) == (1 << 13) - 1
    assert handled_fs_rights(2) & FS_REFER and not handled_fs_rights(1) & FS_REFER
    assert handled_fs_rights(3) & FS_TRUNCATE and not handled_fs_rights(2) & FS_TRUNCATE
    assert handled_fs_rights(5) & FS_IOCTL_DEV and not handled_fs_rights(4) & FS_IOCTL_DEV
    assert handled_fs_rights(7) == (1 << 16) - 1


# --------------------------------------------------------------------------- run_confined


async def test_without_the_sandbox_an_agent_reads_the_database(state: State) -> None:
    """The threat is real: a same-uid agent that is not sandboxed reads everything."""
    seen = await probe_run(state, None)
    assert seen["read:database"] == "ok" and seen["read:secret"] == "ok"
    assert seen["write:state_dir"] == "ok"


@needs_landlock
async def test_sandboxed_agent_cannot_read_the_database_or_the_secrets(state: State) -> None:
    seen = await probe_run(state, state.policy())
    assert seen["read:database"] == "EACCES"
    assert seen["read:secret"] == "EACCES"
    assert seen["write:state_dir"] == "EACCES"


@needs_landlock
async def test_sandboxed_agent_cannot_write_the_system_or_tmp(state: State) -> None:
    seen = await probe_run(state, state.policy())
    # Landlock says EACCES before the file system could say anything else
    assert seen["write:/etc"] == "EACCES"
    assert seen["write:/usr"] == "EACCES"
    assert seen["write:/tmp"] == "EACCES"
    assert seen["open:/etc file"] == "EACCES"
    assert seen["open:/usr file"] == "EACCES"
    for directory in ("/etc", "/usr", "/tmp"):
        assert not (Path(directory) / state.marker).exists()


@needs_landlock
async def test_sandboxed_agent_writes_its_workspace_and_tmpdir_and_runs_programs(
    state: State,
) -> None:
    seen = await probe_run(state, state.policy())
    assert seen["write:workspace"] == "ok"
    assert seen["write:TMPDIR"] == "ok"
    assert seen["open:/dev/null"] == "ok"
    assert seen["exec:/bin/sh"] == "ok"
    assert (state.workspace / state.marker).read_text() == "x"


@needs_landlock
async def test_hidden_entries_of_allowed_hierarchies_stay_hidden(state: State) -> None:
    """Landlock has no deny rule: /etc/mission-control, /run/credentials... are left
    out by allowing their siblings one by one. Shown on a tree of the test's own (and
    on /etc/shadow, which root could otherwise read)."""
    conf = state.root / "conf"
    (conf / "hidden").mkdir(parents=True)
    (conf / "public.txt").write_text("public")
    (conf / "hidden" / "key").write_text(SECRET)
    policy = state.policy()
    policy = SandboxPolicy(
        read_exec=policy.read_exec,
        read_only=(*policy.read_only, str(conf)),
        protected=policy.protected,
        hidden=(*policy.hidden, str(conf / "hidden")),
    )
    argv = state.agent(
        "hidden",
        PROBE.replace('targets["write"]', "{}").replace('targets["open"]', "{}")
        + "\nprint(json.dumps(result))\n",
    )
    targets = {
        "read": {
            "public": str(conf / "public.txt"),
            "hidden": str(conf / "hidden" / "key"),
            "shadow": "/etc/shadow",
            "passwd": "/etc/passwd",
        }
    }
    run = await run_confined(
        [*argv, json.dumps(targets)],
        stdin_data=b"",
        env={},
        cwd=state.workspace,
        limits=LIMITS,
        sandbox=policy,
        tmp_root=state.run_tmp,
    )
    seen = json.loads(run.stdout)
    assert seen["read:public"] == "ok" and seen["read:passwd"] == "ok"
    assert seen["read:hidden"] == "EACCES" and seen["read:shadow"] == "EACCES"


@pytest.mark.skipif(LANDLOCK.abi < 6, reason=f"signal scoping needs Landlock ABI 6 ({LANDLOCK})")
async def test_sandboxed_agent_cannot_signal_the_worker(state: State) -> None:
    """From ABI 6 the run is scoped: no signal to a process outside its sandbox (the
    worker, here the test process), while its own children stay reachable."""
    argv = state.agent(
        "signal",
        f"""
        import errno, os, subprocess, json
        def attempt(pid):
            try:
                os.kill(pid, 0)
                return "ok"
            except OSError as exc:
                return errno.errorcode[exc.errno]
        child = subprocess.Popen(["/bin/sleep", "5"])
        print(json.dumps({{"worker": attempt({os.getpid()}), "child": attempt(child.pid)}}))
        child.kill()
        """,
    )
    run = await run_confined(
        argv,
        stdin_data=b"",
        env={},
        cwd=state.workspace,
        limits=LIMITS,
        sandbox=state.policy(),
        tmp_root=state.run_tmp,
    )
    assert json.loads(run.stdout) == {"worker": "EPERM", "child": "ok"}, run.reason


@needs_landlock
async def test_tmpdir_is_private_under_the_state_dir_and_removed(state: State) -> None:
    argv = state.agent(
        "tmp",
        """
        import json, os
        t = os.environ["TMPDIR"]
        print(json.dumps({"tmp": t, "mode": oct(os.stat(t).st_mode & 0o777)}))
        """,
    )
    run = await run_confined(
        argv,
        stdin_data=b"",
        env={},
        cwd=state.workspace,
        limits=LIMITS,
        sandbox=state.policy(),
        tmp_root=state.run_tmp,
    )
    seen = json.loads(run.stdout)
    assert Path(seen["tmp"]).parent == state.run_tmp and seen["mode"] == "0o700"
    assert not Path(seen["tmp"]).exists()


@needs_landlock
async def test_program_outside_the_system_dirs_still_runs(state: State) -> None:
    """The program's own directory is allowed read+execute (a shebang script here)."""
    script = state.agents / "tool"
    script.write_text(f"#!{sys.executable} -I\nprint('ran')\n")
    script.chmod(0o755)
    run = await run_confined(
        [str(script)],
        stdin_data=b"",
        env={},
        cwd=state.workspace,
        limits=LIMITS,
        sandbox=default_policy(
            database_path=state.db,
            state_dir=state.state,
            secrets_dir=state.secrets,
            backups_dir=state.state / "backups",
        ),
        tmp_root=state.run_tmp,
    )
    assert run.ok and run.stdout == b"ran\n" and run.sandboxed, run.reason


@needs_landlock
async def test_a_program_whose_directory_holds_the_database_is_refused(state: State) -> None:
    """Allowing the program's directory must never allow the state directory."""
    script = state.root / "tool"
    script.write_text(f"#!{sys.executable} -I\nopen('{state.db}').read()\nprint('leak')\n")
    script.chmod(0o755)
    run = await run_confined(
        [str(script)],
        stdin_data=b"",
        env={},
        cwd=state.workspace,
        limits=LIMITS,
        sandbox=default_policy(
            database_path=state.db,
            state_dir=state.state,
            secrets_dir=state.secrets,
            backups_dir=state.state / "backups",
        ),
        tmp_root=state.run_tmp,
    )
    assert not run.started and b"leak" not in run.stdout
    assert "sandbox" in run.reason and "expose" in run.reason


@needs_landlock
def test_the_wrapper_never_runs_the_agent_when_the_sandbox_fails(state: State) -> None:
    """A policy the wrapper cannot apply (a writable directory that does not exist):
    exit 125 with the reason, and the program was not executed."""
    witness = state.workspace / "ran"
    policy = state.policy().with_paths(read_write=[str(state.root / "missing")])
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-m",
            "app.runner.sandbox_exec",
            policy.to_json(),
            "--",
            "/usr/bin/touch",
            str(witness),
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == SANDBOX_FAILED_EXIT
    assert done.stderr.startswith(b"mc-sandbox: ")
    assert not witness.exists()


# --------------------------------------------------------------------------- worker

AGENT_READS_STATE = (
    f"#!{sys.executable} -I\n"
    + RESULT_CODE
    + """
import json, os
def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return exc.errno
def create(path):
    with open(path, "w") as handle:
        handle.write("x")
targets = json.load(open(os.path.join(os.path.dirname(os.path.realpath(__file__)), "targets.json")))
seen = {name: attempt(lambda: open(path, "rb").read()) for name, path in targets["read"].items()}
seen["/tmp"] = attempt(lambda: create(targets["tmp"]))
seen["workspace"] = attempt(lambda: create("written-by-agent"))
seen["TMPDIR"] = attempt(lambda: create(os.path.join(os.environ["TMPDIR"], "x")))
emit(json.dumps(seen))
"""
)


def worker_agent(tmp_path: Path, database: Path, secret: Path) -> Path:
    folder = tmp_path / "agents"
    folder.mkdir(exist_ok=True)
    (folder / "targets.json").write_text(
        json.dumps(
            {
                "read": {"database": str(database), "secret": str(secret)},
                "tmp": f"/tmp/mc-sandbox-worker-{os.getpid()}",
            }
        )
    )
    script = folder / "agent"
    script.write_text(AGENT_READS_STATE)
    script.chmod(0o755)
    return script


@needs_landlock
async def test_worker_runs_agents_in_the_sandbox(tmp_path: Path) -> None:
    """Through the worker: the run's agent cannot read the database or the API's key,
    cannot write /tmp, can write its workspace and TMPDIR; the heartbeat says so."""
    settings = make_settings(tmp_path, runner_sandbox="auto")
    rows = Rows(settings.database_path)
    secret = settings.secrets_dir / "server.key"
    secret.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    secret.write_text(SECRET)
    secret.chmod(0o600)
    script = worker_agent(tmp_path, settings.database_path, secret)
    write_profiles(tmp_path, {"probe": {"argv": [str(script)]}})
    agent = rows.agent(profile="probe", tools=("read_files", "write_files"))
    _, conversation = rows.task(agent)
    assert conversation is not None
    try:
        async with running_worker(settings) as worker:
            assert worker.sandbox is not None and worker.sandbox.status == "enforced"
            outcome = await worker.run_once()
            state = rows.heartbeat_state(worker.id)
    finally:
        leftover = Path(f"/tmp/mc-sandbox-worker-{os.getpid()}")
        if leftover.exists():
            leftover.unlink()
    assert outcome is not None and outcome.status == "SUCCEEDED", outcome
    seen = json.loads(rows.conversation(conversation)["transcript"])
    assert seen == {
        "database": errno.EACCES,
        "secret": errno.EACCES,
        "/tmp": errno.EACCES,
        "workspace": "ok",
        "TMPDIR": "ok",
    }
    assert state["sandbox"]["status"] == "enforced" and state["sandbox"]["enforced"] is True
    assert state["sandbox"]["checks"]["read_database"] == "denied:EACCES"


@needs_landlock
async def test_worker_runs_the_demo_agent_in_the_sandbox(tmp_path: Path) -> None:
    """The bundled demo profile (the venv's interpreter, the app package) still works."""
    settings = make_settings(tmp_path, runner_sandbox="required")
    rows = Rows(settings.database_path)
    agent = rows.agent()
    rows.task(agent, "Summarise the backlog")
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "SUCCEEDED" and outcome.ran, outcome


def no_landlock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The platform says "no Landlock" (as a kernel without it would)."""
    monkeypatch.setattr(
        sandbox_module,
        "landlock_status",
        lambda: LandlockStatus(0, "Landlock is built into the kernel but not enabled at boot"),
    )


async def test_required_without_landlock_refuses_to_run_agents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_landlock(monkeypatch)
    settings = make_settings(tmp_path, runner_sandbox="required")
    rows = Rows(settings.database_path)
    agent = rows.agent()
    _, conversation = rows.task(agent)
    assert conversation is not None
    async with running_worker(settings) as worker:
        assert worker.sandbox is not None and worker.sandbox.status == "refused"
        assert await worker.run_once() is None
        state = rows.heartbeat_state(worker.id)
    row = rows.conversation(conversation)
    assert row["status"] == "QUEUED" and row["started_at"] is None  # waits, never ran
    escalations = rows.escalations("runner_sandbox")
    assert len(escalations) == 1 and "not enforced" in escalations[0]["reason"]
    assert state["sandbox"]["status"] == "refused" and not state["sandbox"]["enforced"]
    # health: the summary and a critical repair with the kernel fix
    workers = [{"seen_at": rows.value("SELECT seen_at FROM worker_heartbeats"), "state": state}]
    assert sandbox_summary(workers, 30)["status"] == "refused"
    (finding,) = sandbox_findings(workers, 30)
    assert finding.severity == "critical" and "lsm=" in finding.fix
    # a restart does not open a second escalation
    async with running_worker(settings):
        pass
    assert len(rows.escalations("runner_sandbox")) == 1


async def test_auto_without_landlock_runs_unconfined_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_landlock(monkeypatch)
    settings = make_settings(tmp_path, runner_sandbox="auto")
    rows = Rows(settings.database_path)
    agent = rows.agent()
    rows.task(agent)
    async with running_worker(settings) as worker:
        assert worker.sandbox is not None and worker.sandbox.status == "unconfined"
        outcome = await worker.run_once()
        state = rows.heartbeat_state(worker.id)
    assert outcome is not None and outcome.status == "SUCCEEDED"
    workers = [{"seen_at": rows.value("SELECT seen_at FROM worker_heartbeats"), "state": state}]
    (finding,) = sandbox_findings(workers, 30)
    assert finding.severity == "warning" and "unconfined filesystem" in finding.title


async def test_worker_once_with_required_and_no_landlock_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``missionctl worker --once``: the refusal is an exit status and a reason."""
    no_landlock(monkeypatch)
    settings = make_settings(tmp_path, runner_sandbox="required")
    rows = Rows(settings.database_path)
    rows.task(rows.agent())
    assert await run_worker(settings, name="once", once=True) == 2
    err = capsys.readouterr().err
    assert "refusing to run agents" in err and "not enabled at boot" in err
    assert rows.value("SELECT status FROM conversations") == "QUEUED"


# --------------------------------------------------------------------------- CLI


def sandbox_check(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "runner", "sandbox-check", *args],
        env=cli_env(tmp_path),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_landlock
def test_sandbox_check_prints_the_probe_and_exits_0_when_enforced(tmp_path: Path) -> None:
    done = sandbox_check(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["enforced"] is True and report["status"] == "enforced"
    assert report["checks"]["read_database"] == "denied:EACCES"
    assert report["checks"]["write_tmp"] == "denied:EACCES"
    assert report["checks"]["write_workspace"] == "allowed"
    # nothing of the probe is left in the state directory
    state_dir = Path(cli_env(tmp_path)["MC_STATE_DIR"])
    assert not [p for p in state_dir.iterdir() if "sandbox-probe" in p.name]
    assert not [p for p in state_dir.parent.iterdir() if "sandbox-probe" in p.name]


def test_sandbox_check_exits_1_when_not_enforced(tmp_path: Path) -> None:
    done = sandbox_check(tmp_path, "--mode", "off")
    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "off"


# --------------------------------------------------------------------------- /api/health


async def test_api_health_shows_the_sandbox_state_and_the_repair(
    client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    """What a worker recorded in its heartbeat reaches /api/health: the summary and,
    when runs are not confined, a repair with the fix."""
    report = SandboxReport("auto", "unconfined", 0, "no Landlock here (test)", {})
    await write_heartbeat(
        ctx.db,
        "host:w1",
        started_at=now_iso(),
        state={"circuits": {}, "running": [], "sandbox": report.as_dict()},
    )
    details = (await client.get("/api/health", headers=admin_headers)).json()
    assert details["runner_sandbox"]["status"] == "unconfined"
    assert details["runner_sandbox"]["enforced"] is False
    repair = next(r for r in details["repairs"] if r["check"] == "runner_sandbox")
    assert repair["severity"] == "warning" and "unconfined filesystem" in repair["title"]
    assert "lsm=" in repair["fix"]
    enforced = SandboxReport("auto", "enforced", 7, "ok", {})
    await write_heartbeat(
        ctx.db,
        "host:w1",
        started_at=now_iso(),
        state={"circuits": {}, "running": [], "sandbox": enforced.as_dict()},
    )
    details = (await client.get("/api/health", headers=admin_headers)).json()
    assert details["runner_sandbox"]["status"] == "enforced"
    assert not [r for r in details["repairs"] if r["check"] == "runner_sandbox"]
