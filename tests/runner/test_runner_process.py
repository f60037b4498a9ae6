"""run_confined against adversarial fake agents. Each control has a test that fails
when the control is removed; process checks use psutil, not the code under test."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import stat
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from app.profiles.profiles import Limits
from app.runner import process
from app.runner.process import RunResult, run_confined, truncation_marker
from tests.support.processes import (
    alive,
    fast_limits,
    kill_all,
    live_in_session,
    read_pids,
    wait_gone,
)

METHODS = ["prlimit", "setrlimit"]
if process.find_prlimit() is None:
    METHODS.remove("prlimit")


def run(
    argv: list[str],
    cwd: Path,
    *,
    limits: Limits | None = None,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
    method: process.LimitMethod = "auto",
) -> RunResult:
    return asyncio.run(
        run_confined(
            argv,
            stdin_data=stdin,
            env=env or {},
            cwd=cwd,
            limits=limits or fast_limits(),
            limit_method=method,
        )
    )


# ---------------------------------------------------------------- basics


def test_normal_run_passes_stdin_and_captures_output(fake_agent, workspace):
    argv = fake_agent(
        "echo",
        """
        import sys
        data = sys.stdin.read()
        sys.stdout.write("got:" + data)
        sys.stderr.write("note")
        """,
    )
    result = run(argv, workspace, stdin=b"hello agent")
    assert result.ok, result.reason
    assert result.exit_code == 0 and result.signal is None
    assert result.stdout == b"got:hello agent"
    assert result.stderr == b"note"
    assert not (result.truncated or result.timed_out or result.cancelled)
    assert result.group_clean and result.reason == "exited with code 0"


def test_nonzero_exit_is_reported(fake_agent, workspace):
    result = run(fake_agent("fail", "raise SystemExit(3)"), workspace)
    assert not result.ok
    assert result.exit_code == 3 and result.reason == "exited with code 3"


def test_program_that_does_not_exist_is_a_result_not_an_exception(workspace, tmp_path):
    result = run([str(tmp_path / "no-such-agent")], workspace)
    assert not result.started and not result.ok
    assert "not found" in result.reason
    result = run(["no-such-agent-on-the-path"], workspace)
    assert not result.started and "not found" in result.reason


def test_run_in_missing_directory_is_refused(fake_agent, tmp_path):
    result = run(fake_agent("ok", "print(1)"), tmp_path / "missing")
    assert not result.started and result.reason.startswith("could not start")


def test_repr_of_a_result_never_shows_the_output(fake_agent, workspace):
    result = run(fake_agent("talk", "print('sk-ant-api03-verysecretvalue')"), workspace)
    assert b"verysecretvalue" in result.stdout
    assert "verysecretvalue" not in repr(result)


# ---------------------------------------------------------------- clean environment (F24)


def test_child_inherits_nothing_from_the_worker_environment(fake_agent, workspace, monkeypatch):
    monkeypatch.setenv("MC_SECRET_KEY", "worker-secret-must-not-leak")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-worker-env-key")
    monkeypatch.setenv("LD_PRELOAD", "/tmp/evil.so")
    argv = fake_agent(
        "envdump",
        """
        import json, os
        print(json.dumps(dict(os.environ)))
        """,
    )
    result = run(argv, workspace, env={"ALLOWED": "yes"})
    assert result.ok, result.reason
    child_env = json.loads(result.stdout)
    assert set(child_env) == {"ALLOWED", "PATH", "HOME", "LANG", "TMPDIR"}
    assert child_env["ALLOWED"] == "yes"
    assert child_env["PATH"] == process.SAFE_PATH
    # a fresh home inside the run's TMPDIR: nothing written there reaches the next run
    assert child_env["HOME"] == os.path.join(child_env["TMPDIR"], "home")
    assert "worker-secret-must-not-leak" not in result.stdout.decode()
    assert "sk-ant-worker-env-key" not in result.stdout.decode()


def test_tmpdir_is_private_and_removed_after_the_run(fake_agent, workspace):
    argv = fake_agent(
        "tmp",
        """
        import os, stat
        tmp = os.environ["TMPDIR"]
        open(os.path.join(tmp, "scratch"), "w").write("x")
        print(tmp, oct(stat.S_IMODE(os.stat(tmp).st_mode)))
        """,
    )
    result = run(argv, workspace)
    tmp, mode = result.stdout.decode().split()
    assert mode == "0o700"
    assert not Path(tmp).exists()


def test_worker_file_descriptors_are_not_inherited(fake_agent, workspace, tmp_path):
    handle = open(tmp_path / "database.sqlite", "wb")  # noqa: SIM115
    try:
        os.set_inheritable(handle.fileno(), True)
        argv = fake_agent(
            "fds",
            """
            import os, sys
            fd = int(sys.argv[1])
            try:
                os.fstat(fd)
                print("open")
            except OSError:
                print("closed")
            """,
        )
        result = run([*argv, str(handle.fileno())], workspace)
    finally:
        handle.close()
    assert result.stdout.strip() == b"closed"


def test_files_created_by_the_agent_are_private(fake_agent, workspace):
    run(fake_agent("mkfile", "open('made-by-agent', 'w').write('x')"), workspace)
    mode = stat.S_IMODE((workspace / "made-by-agent").stat().st_mode)
    assert mode == 0o600


# ---------------------------------------------------------------- session and limits


def test_child_runs_in_its_own_session_and_group(fake_agent, workspace):
    argv = fake_agent("ids", "import os; print(os.getpid(), os.getsid(0), os.getpgrp())")
    result = run(argv, workspace)
    pid, sid, pgrp = map(int, result.stdout.split())
    assert pid == sid == pgrp
    assert sid != os.getsid(0)


@pytest.mark.parametrize("method", METHODS)
def test_resource_limits_are_applied(fake_agent, workspace, method):
    argv = fake_agent(
        "limits",
        """
        import json, resource as r
        names = ["RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CORE"]
        print(json.dumps({n: r.getrlimit(getattr(r, n)) for n in names}))
        """,
    )
    limits = fast_limits(cpu_seconds=7, address_space_mb=700, open_files=77, processes=55)
    result = run(argv, workspace, limits=limits, method=method)
    assert result.ok, (result.reason, result.stderr)
    assert result.limit_method == method
    got = json.loads(result.stdout)
    assert got["RLIMIT_CPU"] == [7, 8]
    assert got["RLIMIT_AS"] == [700 * 1024 * 1024] * 2
    assert got["RLIMIT_NOFILE"] == [77, 77]
    assert got["RLIMIT_NPROC"] == [55, 55]
    assert got["RLIMIT_CORE"] == [0, 0]


def test_the_worker_itself_is_not_limited(fake_agent, workspace):
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    run(fake_agent("ok", "pass"), workspace, limits=fast_limits(open_files=20), method="setrlimit")
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before


@pytest.mark.parametrize("method", METHODS)
def test_open_files_limit_bites(fake_agent, workspace, method):
    argv = fake_agent(
        "fdhog",
        """
        import errno
        handles = []
        try:
            for _ in range(200):
                handles.append(open(__file__))
            print("unlimited")
        except OSError as exc:
            print("EMFILE" if exc.errno == errno.EMFILE else exc)
        """,
    )
    result = run(argv, workspace, limits=fast_limits(open_files=24), method=method)
    assert result.stdout.strip() == b"EMFILE"


@pytest.mark.parametrize("method", METHODS)
def test_address_space_limit_bites(fake_agent, workspace, method):
    argv = fake_agent(
        "memhog",
        """
        try:
            block = bytearray(600 * 1024 * 1024)
            print("allocated")
        except MemoryError:
            print("MemoryError")
        """,
    )
    result = run(argv, workspace, limits=fast_limits(address_space_mb=256), method=method)
    assert result.stdout.strip() == b"MemoryError"


def test_cpu_limit_kills_a_spinning_agent(fake_agent, workspace):
    argv = fake_agent("spin", "while True:\n    pass\n")
    result = run(argv, workspace, limits=fast_limits(cpu_seconds=1, wall_clock_seconds=10))
    assert not result.timed_out
    assert result.signal in (signal.SIGXCPU, signal.SIGKILL)
    assert result.duration_s < 5
    if result.signal == signal.SIGXCPU:
        assert "CPU time limit" in result.reason


# ---------------------------------------------------------------- output caps (F12)


def test_stdout_flood_is_truncated_with_marker_and_memory_stays_bounded(fake_agent, workspace):
    """The flooder writes 40 MB then would exit 0: a runner that read everything and
    truncated afterwards would hold 40 MB; this one holds the 5 MB cap."""
    argv = fake_agent(
        "flood",
        """
        import sys
        block = b"A" * 65536
        for _ in range(640):
            sys.stdout.buffer.write(block)
        """,
    )
    limits = fast_limits(wall_clock_seconds=10)
    assert limits.stdout_cap_bytes == 5_000_000
    tracemalloc.start()
    try:
        result = run(argv, workspace, limits=limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    marker = truncation_marker(5_000_000)
    assert marker == b"\n[TRUNCATED: output exceeded 5000000 bytes]"
    assert result.truncated and not result.timed_out
    assert result.stdout == b"A" * 5_000_000 + marker
    assert result.reason.startswith("stopped: stdout exceeded 5000000 bytes")
    assert result.exit_code != 0  # stopped, not run to completion
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes"
    assert result.group_clean


def test_endless_flood_is_stopped_at_the_cap(fake_agent, workspace):
    argv = fake_agent(
        "endless",
        """
        import sys
        while True:
            sys.stdout.buffer.write(b"B" * 65536)
        """,
    )
    result = run(argv, workspace, limits=fast_limits(stdout_cap_bytes=100_000))
    assert result.truncated and not result.timed_out
    assert len(result.stdout) == 100_000 + len(truncation_marker(100_000))
    assert result.duration_s < 2


def test_stderr_is_drained_concurrently_and_capped(fake_agent, workspace):
    """3 MB on stderr before any stdout: without a concurrent drain the agent blocks
    on a full pipe and the run times out."""
    argv = fake_agent(
        "stderrflood",
        """
        import sys
        for _ in range(48):
            sys.stderr.buffer.write(b"E" * 65536)
        sys.stderr.flush()
        print("finished")
        """,
    )
    result = run(argv, workspace, limits=fast_limits(wall_clock_seconds=5))
    assert result.ok, result.reason
    assert result.stdout.strip() == b"finished"
    assert result.stderr_truncated
    cap = result.stderr[: 256 * 1024]
    assert cap == b"E" * 256 * 1024
    assert result.stderr[256 * 1024 :] == truncation_marker(256 * 1024)


def test_agent_that_never_reads_stdin_does_not_deadlock(fake_agent, workspace):
    argv = fake_agent("deaf", "print('not reading')")
    result = run(argv, workspace, stdin=b"x" * (2 * 1024 * 1024))
    assert result.ok, result.reason


# ---------------------------------------------------------------- timeouts, cancel, leftovers

HANGER = """
import os, signal, sys, time
pidfile = sys.argv[1]
child = os.fork()
if child == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(pidfile, "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(120)
    os._exit(0)
with open(pidfile, "a") as f:
    f.write(f"{os.getpid()}\\n")
time.sleep(120)
"""


def test_hanging_agent_times_out_and_its_group_is_killed(fake_agent, workspace, tmp_path):
    pidfile = tmp_path / "pids"
    argv = [*fake_agent("hang", HANGER), str(pidfile)]
    started = time.monotonic()
    try:
        result = run(argv, workspace, limits=fast_limits(wall_clock_seconds=1.0))
        elapsed = time.monotonic() - started
        pids = read_pids(pidfile)
        assert len(pids) == 2
        assert result.timed_out and not result.ok
        assert result.reason.startswith("stopped: wall-clock limit of 1 s")
        assert elapsed < 1.0 + 0.3 + 6.0  # wall clock + grace, with room for a loaded machine
        assert wait_gone(pids, within=0.5) == []  # the SIGTERM-ignoring child too
        assert result.group_clean
    finally:
        kill_all(read_pids(pidfile))


FORKER = """
import os, signal, sys, time
pidfile, expected = sys.argv[1], 4

def daemon(new_group):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if new_group:
        os.setpgid(0, 0)  # leaves the process group, stays in the session
    with open(pidfile, "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(120)
    os._exit(0)

for new_group in (False, True):
    if os.fork() == 0:
        if os.fork() == 0:
            daemon(new_group)  # grandchild
        daemon(new_group)  # child
deadline = time.time() + 3
while time.time() < deadline:
    with open(pidfile) as f:
        if len(f.read().split()) >= expected:
            break
    time.sleep(0.01)
print("parent exits cleanly")
"""


def test_agent_that_forks_and_exits_leaves_nothing_running(fake_agent, workspace, tmp_path):
    """Children and grandchildren ignore SIGTERM and hold stdout open; one pair moved
    to its own process group (killpg alone would miss them)."""
    pidfile = tmp_path / "pids"
    pidfile.write_text("")
    argv = [*fake_agent("forker", FORKER), str(pidfile)]
    try:
        result = run(argv, workspace)
        pids = read_pids(pidfile)
        assert len(pids) == 4
        assert result.exit_code == 0 and not result.timed_out
        assert result.stdout.strip() == b"parent exits cleanly"
        assert result.leftovers_killed == 4
        assert "4 leftover process(es)" in result.reason
        assert wait_gone(pids, within=0.5) == []
        assert result.group_clean
    finally:
        kill_all(read_pids(pidfile))


def test_setsid_escape_is_detected_and_reported(fake_agent, workspace, tmp_path):
    """A daemon that calls setsid() leaves the session: only the systemd scope on the
    Pi contains it (documented). Here the runner must still return promptly and say
    that a pipe was held open by a process outside the run."""
    pidfile = tmp_path / "pids"
    argv = [
        *fake_agent(
            "escaper",
            """
            import os, sys, time
            if os.fork() == 0:
                os.setsid()
                with open(sys.argv[1], "w") as f:
                    f.write(str(os.getpid()))
                time.sleep(60)
                os._exit(0)
            while not os.path.exists(sys.argv[1]):
                time.sleep(0.01)
            """,
        ),
        str(pidfile),
    ]
    try:
        started = time.monotonic()
        result = run(argv, workspace)
        assert time.monotonic() - started < 3
        assert result.exit_code == 0
        assert "held open by a process outside the run's session" in result.reason
    finally:
        kill_all(read_pids(pidfile))


def test_cancel_event_kills_the_group(fake_agent, workspace, tmp_path):
    pidfile = tmp_path / "pids"
    argv = [*fake_agent("hang", HANGER), str(pidfile)]

    async def scenario() -> RunResult:
        cancel = asyncio.Event()
        asyncio.get_running_loop().call_later(0.4, cancel.set)
        return await run_confined(
            argv,
            stdin_data=b"",
            env={},
            cwd=workspace,
            limits=fast_limits(wall_clock_seconds=10),
            cancel=cancel,
        )

    try:
        result = asyncio.run(scenario())
        assert result.cancelled and not result.timed_out and not result.ok
        assert result.reason == "stopped: cancelled"
        assert result.duration_s < 2
        pids = read_pids(pidfile)
        assert len(pids) == 2
        assert wait_gone(pids, within=0.5) == []
    finally:
        kill_all(read_pids(pidfile))


def test_cancel_before_start_spawns_nothing(fake_agent, workspace, tmp_path):
    marker = tmp_path / "ran"
    argv = [*fake_agent("touch", "import sys; open(sys.argv[1], 'w')"), str(marker)]

    async def scenario() -> RunResult:
        cancel = asyncio.Event()
        cancel.set()
        return await run_confined(
            argv, stdin_data=b"", env={}, cwd=workspace, limits=fast_limits(), cancel=cancel
        )

    result = asyncio.run(scenario())
    assert result.cancelled and not result.started
    assert not marker.exists()


def test_cancelling_the_calling_task_kills_the_run(fake_agent, workspace, tmp_path):
    pidfile = tmp_path / "pids"
    argv = [*fake_agent("hang", HANGER), str(pidfile)]

    async def scenario() -> None:
        task = asyncio.create_task(
            run_confined(
                argv,
                stdin_data=b"",
                env={},
                cwd=workspace,
                limits=fast_limits(wall_clock_seconds=10),
            )
        )
        await asyncio.sleep(0.4)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(scenario())
        pids = read_pids(pidfile)
        assert len(pids) == 2
        assert wait_gone(pids, within=1.0) == []
    finally:
        kill_all(read_pids(pidfile))


def test_no_session_member_survives_any_scenario(fake_agent, workspace, tmp_path):
    """Belt and braces: after a timeout, nothing in the run's session is alive."""
    argv = fake_agent("ids", "import os, time; print(os.getsid(0), flush=True); time.sleep(30)")
    result = run(argv, workspace, limits=fast_limits(wall_clock_seconds=0.5))
    sid = int(result.stdout.split()[0])
    assert result.timed_out
    assert live_in_session(sid) == []
    assert not alive(sid)


@pytest.mark.skipif(sys.platform != "linux", reason="Linux /proc")
def test_session_members_sees_a_live_session(fake_agent, workspace, tmp_path):
    """The /proc scan used by the sweep agrees with psutil."""
    pidfile = tmp_path / "pids"
    argv = [*fake_agent("hang", HANGER), str(pidfile)]

    async def scenario() -> list[int]:
        task = asyncio.create_task(
            run_confined(
                argv,
                stdin_data=b"",
                env={},
                cwd=workspace,
                limits=fast_limits(wall_clock_seconds=2),
            )
        )
        for _ in range(100):
            await asyncio.sleep(0.02)
            if len(read_pids(pidfile)) == 2:
                break
        pids = read_pids(pidfile)
        sid = os.getsid(pids[0])
        seen = process.session_members(sid)
        assert sorted(seen) == sorted(live_in_session(sid))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen

    try:
        seen = asyncio.run(scenario())
        pids = read_pids(pidfile)
        assert sorted(seen) == sorted(pids)
        assert wait_gone(pids, within=1.0) == []
    finally:
        kill_all(read_pids(pidfile))


# ---------------------------------------------------------------- limits that cannot be set


def test_check_rlimits_settable_reports_a_seccomp_denial(monkeypatch):
    assert process.check_rlimits_settable() is None

    def denied(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(process.resource, "setrlimit", denied)
    problem = process.check_rlimits_settable()
    assert problem is not None and "SystemCallFilter=~@resources" in problem


def test_run_fails_closed_when_limits_cannot_be_applied(
    fake_agent, workspace, tmp_path, monkeypatch
):
    """setrlimit failing in the child: the agent must not run unlimited."""
    marker = tmp_path / "ran"
    argv = [*fake_agent("touch", "import sys; open(sys.argv[1], 'w')"), str(marker)]

    def denied(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(process.resource, "setrlimit", denied)
    result = run(argv, workspace, method="setrlimit")
    assert not result.started
    assert result.reason == "could not start: resource limits could not be applied"
    assert not marker.exists()
