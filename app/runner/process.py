"""Run one agent process under confinement (F12, F24).

What :func:`run_confined` guarantees on Linux, whatever the agent does:

* **clean environment**: the child receives exactly ``env`` plus PATH, HOME, LANG
  and TMPDIR set here (TMPDIR a fresh private directory removed afterwards, HOME
  a fresh directory inside it: nothing an agent writes to its home, such as a
  CLI's settings, survives into the next run); nothing of the worker's
  ``os.environ`` (F24).
  File descriptors other than stdin/stdout/stderr are closed; umask is 077.
* **own session and process group** (``start_new_session=True``): the run can be
  killed as a whole.
* **resource limits**: CPU seconds, address space, open files, processes, and no
  core dumps (a core file could hold the provider key). Applied by exec'ing the
  program through util-linux ``prlimit`` (the limits are set by prlimit on itself,
  then it execs the agent, so there is no window in which the agent runs
  unlimited). Why not ``preexec_fn``: it runs Python code between fork and exec,
  which CPython documents as unsafe when the parent has threads (the worker has
  them: aiosqlite, the child watcher) and it disables the vfork fast path. The
  ``preexec_fn``/``setrlimit`` method remains as a fallback when prlimit is absent.
  ``prlimit --pid`` after spawn was not used: the agent would run unlimited until
  the call lands.
* **wall-clock limit**, **cancel** via an :class:`asyncio.Event`, and cancellation
  of the calling task: the whole session gets SIGTERM, a short grace, then SIGKILL.
* **bounded output**: stdout is read as a stream and never held beyond
  ``stdout_cap_bytes``; beyond it the run is stopped and the output ends with
  ``\\n[TRUNCATED: output exceeded N bytes]``. With a ``stdout_sink`` (a
  runtime's live reader), every byte goes through the sink first, which decides
  what is kept; reading goes on past the cap until the run is gone, so the
  accounting sees everything the agent printed: the cap cuts the transcript,
  never the accounting. stderr is drained concurrently
  (the child never blocks on it) and capped at ``stderr_cap_bytes``.
* **filesystem sandbox** (``sandbox=``, Linux Landlock, ``app/runner/sandbox.py``):
  the agent is exec'd through ``app.runner.sandbox_exec``, which confines itself
  to the policy (read-only system, its workspace and TMPDIR writable, the
  database, the secrets and ``/tmp`` out of reach) and then execs the program. If
  it cannot, the program is not run and the result says "could not start".
  TMPDIR is then created under ``tmp_root`` (the state directory), never in the
  shared ``/tmp``.
* **nothing left running**: after every run, even a clean exit, every process
  still in the run's session (its process group, and any group it created inside
  the session) is sent SIGKILL, and the result says whether the session was
  verified empty. A process that calls ``setsid()`` itself escapes this sweep;
  the systemd scope used on the Pi closes that gap (docs/runner-confinement.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol

from app.profiles.profiles import Limits
from app.runner.sandbox import (
    SANDBOX_FAILED_EXIT,
    SANDBOX_FAILED_MARKER,
    RunRights,
    SandboxError,
    SandboxPolicy,
    run_policy,
    wrapper_argv,
)

LimitMethod = Literal["auto", "prlimit", "setrlimit"]
log = logging.getLogger("mission_control.runner.process")


class StdoutSink(Protocol):
    """A live reader of a run's stdout (for example :class:`ClaudeStream`)."""

    def feed(self, data: bytes) -> bytes:
        """Read ``data``; return the part to keep as the run's output."""
        ...

    def close(self) -> bytes:
        """The end of the output: what is left to keep."""
        ...


SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
DEFAULT_LANG = "C.UTF-8"
_PRLIMIT_CANDIDATES = (Path("/usr/bin/prlimit"), Path("/bin/prlimit"))
#: after the session is killed, how long the pipes may take to reach EOF
_DRAIN_GRACE_S = 1.0
#: how long the main process may take to be reaped after SIGKILL
_REAP_TIMEOUT_S = 5.0
_POLL_S = 0.02


def truncation_marker(cap: int) -> bytes:
    return f"\n[TRUNCATED: output exceeded {cap} bytes]".encode()


@dataclass(frozen=True, slots=True)
class RunResult:
    """What happened to one run. ``repr`` never shows the output (it may hold secrets)."""

    started: bool
    exit_code: int | None
    signal: int | None
    stdout: bytes = field(repr=False)
    stderr: bytes = field(repr=False)
    truncated: bool
    stderr_truncated: bool
    timed_out: bool
    cancelled: bool
    duration_s: float
    reason: str
    #: every process of the run's session was verified gone afterwards
    group_clean: bool
    #: processes still in the session after the main process ended, then killed
    leftovers_killed: int
    limit_method: str
    #: the run was confined by the Landlock sandbox
    sandboxed: bool = False

    @property
    def ok(self) -> bool:
        return (
            self.started
            and self.exit_code == 0
            and not (self.truncated or self.timed_out or self.cancelled)
        )


# --------------------------------------------------------------------------- limits


@lru_cache(maxsize=1)
def find_prlimit() -> str | None:
    """util-linux prlimit at a fixed system path (never looked up through PATH)."""
    for candidate in _PRLIMIT_CANDIDATES:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _rlimit_pairs(limits: Limits) -> list[tuple[int, tuple[int, int]]]:
    address_space = limits.address_space_mb * 1024 * 1024
    return [
        # soft: SIGXCPU (the agent may notice), hard one second later: SIGKILL
        (resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1)),
        (resource.RLIMIT_AS, (address_space, address_space)),
        (resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files)),
        (resource.RLIMIT_NPROC, (limits.processes, limits.processes)),
        (resource.RLIMIT_CORE, (0, 0)),
    ]


_PRLIMIT_OPTION = {
    resource.RLIMIT_CPU: "--cpu",
    resource.RLIMIT_AS: "--as",
    resource.RLIMIT_NOFILE: "--nofile",
    resource.RLIMIT_NPROC: "--nproc",
    resource.RLIMIT_CORE: "--core",
}


def check_rlimits_settable() -> str | None:
    """Can this process set resource limits at all? Call at worker start.

    A seccomp filter that denies ``setrlimit``/``prlimit64`` (systemd's
    ``SystemCallFilter=~@resources``) would make every confined run fail to
    start: prlimit refuses to exec the agent, so runs fail closed but with an
    obscure reason. This re-applies the current RLIMIT_CORE (a no-op) to find out
    early. Returns None when limits can be set, else the reason.
    """
    try:
        current = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, current)
    except (OSError, ValueError) as exc:
        return (
            "resource limits cannot be set in this process "
            f"({type(exc).__name__}: {exc}); agent runs would not be confined. "
            "Is setrlimit/prlimit64 denied by a seccomp filter (SystemCallFilter=~@resources)?"
        )
    return None


def _with_limits(
    argv: list[str], limits: Limits, method: LimitMethod
) -> tuple[list[str], Callable[[], None] | None, str]:
    pairs = _rlimit_pairs(limits)
    prlimit = find_prlimit()
    if method == "prlimit" or (method == "auto" and prlimit is not None):
        if prlimit is None:
            raise RuntimeError("prlimit is not installed (util-linux)")
        options = [f"{_PRLIMIT_OPTION[res]}={soft}:{hard}" for res, (soft, hard) in pairs]
        return [prlimit, *options, "--", *argv], None, "prlimit"

    def apply_limits() -> None:  # runs in the child between fork and exec
        for res, value in pairs:
            resource.setrlimit(res, value)

    return argv, apply_limits, "setrlimit"


_PR_SET_DUMPABLE = 4
_PR_GET_DUMPABLE = 3


def harden_worker_process() -> bool:
    """Make the worker non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``); call at start-up.

    Agents run under the worker's uid unless the systemd scope gives them another
    one. A same-uid process can read ``/proc/<worker>/environ`` and ptrace the
    worker, which would undo the clean environment (F24); a non-dumpable process is
    protected from both (its /proc files become root-owned, ptrace needs
    CAP_SYS_PTRACE), and it writes no core file. Exec'd agents are dumpable again,
    so this costs them nothing. Returns False where prctl is unavailable.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            return False
        return bool(libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


# --------------------------------------------------------------------------- sessions


def _proc_stat(pid: int) -> tuple[bytes, int, int] | None:
    """(state, pgrp, session) of a pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data.rpartition(b")")[2].split()
    try:
        return fields[0], int(fields[2]), int(fields[3])
    except (IndexError, ValueError):
        return None


def session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes whose session is ``sid`` (Linux ``/proc``)."""
    members = []
    try:
        entries = [entry.name for entry in os.scandir("/proc")]
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        info = _proc_stat(int(name))
        if info is not None and info[2] == sid and info[0] not in (b"Z", b"X"):
            members.append(int(name))
    return members


def _signal_pid_in_session(pid: int, sid: int, sig: int) -> bool:
    """Signal ``pid`` only if it is still in session ``sid`` (pidfd: no pid-reuse race)."""
    pidfd = -1
    try:
        with contextlib.suppress(OSError, AttributeError):
            pidfd = os.pidfd_open(pid)
        info = _proc_stat(pid)
        if info is None or info[2] != sid:
            return False
        if pidfd >= 0:
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def signal_session(sid: int, sig: int) -> int:
    """Send ``sig`` to the process group ``sid`` and to every other process of the
    session (a child may have moved to its own group). Returns how many live
    processes the session had just before."""
    members = session_members(sid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, sig)
    for pid in members:  # the ones in other groups of the session; the rest: harmless
        _signal_pid_in_session(pid, sid, sig)
    return len(members)


async def _wait_session_empty(sid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while True:
        if not session_members(sid):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_S)


# --------------------------------------------------------------------------- streams


class _Capture:
    """Bytes of one pipe, never more than ``cap`` of them (the rest is discarded)."""

    __slots__ = ("buffer", "cap", "overflowed")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.buffer = bytearray()
        self.overflowed = False

    def add(self, data: bytes) -> bool:
        """Keep what fits; True when this call passed the cap."""
        if self.overflowed:
            return False
        room = self.cap - len(self.buffer)
        if len(data) <= room:
            self.buffer += data
            return False
        self.buffer += data[:room]
        self.overflowed = True
        return True


class _RunProtocol(asyncio.SubprocessProtocol):
    """Receives the child's pipes directly: data beyond a cap is dropped on arrival,
    so memory never holds more than the cap plus one read (256 KiB)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, limits: Limits, sink: StdoutSink | None = None
    ) -> None:
        self.sink = sink
        self.transport: asyncio.SubprocessTransport | None = None
        self.out = _Capture(limits.stdout_cap_bytes)
        self.err = _Capture(limits.stderr_cap_bytes)
        self.exited: asyncio.Future[None] = loop.create_future()
        self.overflow: asyncio.Future[None] = loop.create_future()
        self.pipe_closed: dict[int, asyncio.Future[None]] = {
            1: loop.create_future(),
            2: loop.create_future(),
        }

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        assert isinstance(data, bytes)
        if fd == 1 and self.sink is not None:
            # the sink reads everything (live accounting); the cap applies to what it keeps
            if self.out.add(self.sink.feed(data)):
                _set(self.overflow)
        elif fd == 1:
            if self.out.add(data):
                _set(self.overflow)
                # the run is over: stop reading, the child blocks until it is killed
                pipe = self.transport.get_pipe_transport(1) if self.transport else None
                if isinstance(pipe, asyncio.ReadTransport):
                    pipe.pause_reading()
        elif fd == 2:
            self.err.add(data)  # beyond the cap: read and discarded, never blocks the child

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1 and self.sink is not None:
            self.out.add(self.sink.close())
        if fd in self.pipe_closed:
            _set(self.pipe_closed[fd])

    def process_exited(self) -> None:
        _set(self.exited)


def _set(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# --------------------------------------------------------------------------- main


def _child_env(env: Mapping[str, str], home: str, tmpdir: str) -> dict[str, str]:
    child = {"PATH": SAFE_PATH, "HOME": home, "LANG": DEFAULT_LANG, "TMPDIR": tmpdir}
    for name, value in env.items():
        if not name or "=" in name or "\x00" in name or "\x00" in value:
            raise ValueError("invalid environment entry for the agent")
        child[name] = value
    return child


def _resolve_program(program: str, path: str) -> str | None:
    if "/" in program:
        return program if Path(program).is_file() and os.access(program, os.X_OK) else None
    return shutil.which(program, path=path)


def _describe_exit(returncode: int | None) -> tuple[int | None, int | None, str]:
    if returncode is None:
        return None, None, "did not exit after SIGKILL"
    if returncode >= 0:
        return returncode, None, f"exited with code {returncode}"
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    note = " (CPU time limit)" if number == signal.SIGXCPU else ""
    return None, number, f"killed by {name}{note}"


async def run_confined(
    argv: Sequence[str],
    *,
    stdin_data: bytes,
    env: Mapping[str, str],
    cwd: Path,
    limits: Limits,
    cancel: asyncio.Event | None = None,
    limit_method: LimitMethod = "auto",
    sandbox: SandboxPolicy | None = None,
    tmp_root: Path | None = None,
    rights: RunRights | None = None,
    stdout_sink: StdoutSink | None = None,
    prepare_home: Callable[[Path], None] | None = None,
    finish_home: Callable[[Path], None] | None = None,
) -> RunResult:
    """Run ``argv`` confined (see the module docstring); never leaves a process behind.

    Returns a :class:`RunResult` for every outcome of the agent, including a program
    that cannot be started. Raises only for caller errors (empty argv, invalid env)
    and re-raises :class:`asyncio.CancelledError` after killing the run.

    ``sandbox``: confine the run to this policy plus ``cwd``, the run's TMPDIR and
    the directory of the program (see :mod:`app.runner.sandbox`), with ``rights``
    (default: shell and write). ``tmp_root``: where the private TMPDIR is created
    (default: the system's temporary directory). ``stdout_sink``: a live reader of
    stdout (see the module docstring). ``prepare_home``: called with the run's fresh
    HOME before the program starts (a runtime's configuration files); an error
    there means the run does not start. ``finish_home``: called with the HOME after
    the run's processes are gone, before it is removed (a runtime's session files).
    """
    if not argv:
        raise ValueError("argv is empty")
    started_at = time.monotonic()
    tmpdir = tempfile.mkdtemp(prefix="mc-run-", dir=tmp_root)
    try:
        home = os.path.join(tmpdir, "home")  # noqa: PTH118
        os.mkdir(home, 0o700)  # noqa: PTH102
        child_env = _child_env(env, home, tmpdir)
        method = "prlimit" if limit_method == "prlimit" or find_prlimit() else "setrlimit"

        def not_started(reason: str) -> RunResult:
            return RunResult(
                started=False,
                exit_code=None,
                signal=None,
                stdout=b"",
                stderr=b"",
                truncated=False,
                stderr_truncated=False,
                timed_out=False,
                cancelled=reason == "cancelled before start",
                duration_s=time.monotonic() - started_at,
                reason=reason,
                group_clean=True,
                leftovers_killed=0,
                limit_method=method,
            )

        if cancel is not None and cancel.is_set():
            return not_started("cancelled before start")
        if prepare_home is not None:
            try:
                prepare_home(Path(home))
            except Exception as exc:  # a runtime's configuration: the run must not start
                return not_started(f"could not start: preparing HOME failed: {exc}"[:300])
        program = _resolve_program(argv[0], child_env["PATH"])
        if program is None:
            return not_started(f"could not start: {argv[0]!r} not found or not executable")
        run_argv = [program, *argv[1:]]
        if sandbox is not None:
            try:
                policy = run_policy(
                    sandbox,
                    program=program,
                    cwd=str(cwd),
                    tmpdir=tmpdir,
                    rights=rights if rights is not None else RunRights(),
                )
                run_argv = wrapper_argv(policy, run_argv)
            except SandboxError as exc:
                return not_started(f"could not start: sandbox: {exc}")
        full_argv, preexec, method = _with_limits(run_argv, limits, limit_method)
        loop = asyncio.get_running_loop()
        protocol = _RunProtocol(loop, limits, stdout_sink)
        try:
            transport, _ = await loop.subprocess_exec(
                lambda: protocol,
                *full_argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=child_env,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
                umask=0o077,
                preexec_fn=preexec,
            )
        except OSError as exc:
            return not_started(f"could not start: {exc.strerror or type(exc).__name__}")
        except subprocess.SubprocessError:
            # preexec_fn failed: the limits could not be set, so the agent must not run
            return not_started("could not start: resource limits could not be applied")
        result = await _supervise(
            transport, protocol, stdin_data, limits, cancel, started_at, method
        )
        if finish_home is not None:
            try:
                finish_home(Path(home))
            except Exception:  # keeping a session is a convenience, never a run's fate
                log.warning("could not keep the run's session files", exc_info=True)
        if sandbox is None:
            return result
        if result.exit_code == SANDBOX_FAILED_EXIT and result.stderr.startswith(
            SANDBOX_FAILED_MARKER
        ):
            # the wrapper refused: the agent's program never ran
            line = result.stderr[len(SANDBOX_FAILED_MARKER) :].split(b"\n", 1)[0]
            return replace(
                result,
                started=False,
                reason="could not start: sandbox: " + line.decode("utf-8", "replace")[:300],
            )
        return replace(result, sandboxed=True)
    finally:
        await asyncio.to_thread(shutil.rmtree, tmpdir, True)


async def _supervise(
    transport: asyncio.SubprocessTransport,
    protocol: _RunProtocol,
    stdin_data: bytes,
    limits: Limits,
    cancel: asyncio.Event | None,
    started_at: float,
    method: str,
) -> RunResult:
    sid = transport.get_pid()  # session leader: pid == sid == pgid
    cancel_task = asyncio.create_task(cancel.wait()) if cancel is not None else None
    notes: list[str] = []
    leftovers = 0
    try:
        stdin_pipe = transport.get_pipe_transport(0)
        if isinstance(stdin_pipe, asyncio.WriteTransport):
            # buffered by the transport; EPIPE (the agent never read it) is not our error
            if stdin_data:
                stdin_pipe.write(stdin_data)
            stdin_pipe.close()
        stop = await _watch(protocol, cancel_task, started_at, limits)
        if stop is not None:
            signal_session(sid, signal.SIGTERM)
            await _wait_session_empty(sid, limits.term_grace_seconds)
            signal_session(sid, signal.SIGKILL)
        else:
            # the main process ended: whatever it left in the session dies now
            leftovers = signal_session(sid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(protocol.exited), _REAP_TIMEOUT_S)
        pipes = [protocol.pipe_closed[2]]
        if not protocol.out.overflowed or protocol.sink is not None:
            # without a sink, stdout reading is paused after an overflow
            pipes.append(protocol.pipe_closed[1])
        _, pending = await asyncio.wait(pipes, timeout=_DRAIN_GRACE_S)
        if pending:
            notes.append("an output pipe was held open by a process outside the run's session")
        group_clean = await _wait_session_empty(sid, _DRAIN_GRACE_S)
        if not group_clean:
            signal_session(sid, signal.SIGKILL)
            group_clean = await _wait_session_empty(sid, _DRAIN_GRACE_S)
            if not group_clean:
                notes.append("processes of the run survived SIGKILL")
    except BaseException:
        # cancelled from outside (worker shutdown) or a bug: the run must not outlive us
        signal_session(sid, signal.SIGKILL)
        raise
    finally:
        if cancel_task is not None:
            cancel_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cancel_task
        transport.close()

    out, err = protocol.out, protocol.err
    exit_code, sig, exit_text = _describe_exit(transport.get_returncode())
    if out.overflowed:
        out.buffer += truncation_marker(limits.stdout_cap_bytes)
    if err.overflowed:
        err.buffer += truncation_marker(limits.stderr_cap_bytes)
    if stop == "truncated":
        reason = f"stopped: stdout exceeded {limits.stdout_cap_bytes} bytes"
    elif stop == "timeout":
        reason = f"stopped: wall-clock limit of {limits.wall_clock_seconds:g} s reached"
    elif stop == "cancelled":
        reason = "stopped: cancelled"
    else:
        reason = exit_text
    if leftovers:
        notes.append(f"{leftovers} leftover process(es) of the run killed after it exited")
    if notes:
        reason = "; ".join([reason, *notes])
    return RunResult(
        started=True,
        exit_code=exit_code,
        signal=sig,
        stdout=bytes(out.buffer),
        stderr=bytes(err.buffer),
        truncated=out.overflowed,
        stderr_truncated=err.overflowed,
        timed_out=stop == "timeout",
        cancelled=stop == "cancelled",
        duration_s=time.monotonic() - started_at,
        reason=reason,
        group_clean=group_clean,
        leftovers_killed=leftovers,
        limit_method=method,
    )


async def _watch(
    protocol: _RunProtocol,
    cancel_task: asyncio.Task[Literal[True]] | None,
    started_at: float,
    limits: Limits,
) -> str | None:
    """Wait for the main process to end; the reason to stop the run early, or None."""
    watched: set[asyncio.Future[Any]] = {protocol.exited, protocol.overflow}
    if cancel_task is not None:
        watched.add(cancel_task)
    remaining = started_at + limits.wall_clock_seconds - time.monotonic()
    if remaining > 0:
        await asyncio.wait(watched, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
    if protocol.overflow.done():
        return "truncated"
    if cancel_task is not None and cancel_task.done():
        return "cancelled"
    if protocol.exited.done():
        return None
    return "timeout"
