"""A sandboxed run cannot reach the API's unix socket (security model, layer 6).

Landlock does not mediate ``connect()`` to a socket file, so the sandbox's seccomp
filter refuses ``socket(AF_UNIX)`` (``app/runner/sandbox_exec.py``,
``unix_socket_filter``). Shown with a real listener in a directory configured as the
API's socket directory (``MC_LISTEN_UDS``) and a real agent program: without the
sandbox it connects (the threat is real), inside it gets ``EACCES``. Removing
``deny_unix_sockets(libc)`` from ``restrict_self`` makes these tests fail.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.settings import Settings
from app.runner.process import run_confined
from app.runner.sandbox import SandboxError, probe
from app.runner.sandbox_exec import SECCOMP_ARCHES, unix_socket_filter
from tests.runner.test_sandbox import LIMITS, State, needs_landlock

CONNECT = """
import errno, json, os, socket, sys

def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))

def connect(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)

def pair():
    left, right = socket.socketpair()
    left.sendall(b"x")
    assert right.recv(1) == b"x"
    left.close(); right.close()

def tcp():
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()

print(json.dumps({
    "connect": attempt(lambda: connect(sys.argv[1])),
    "list_dir": attempt(lambda: os.listdir(os.path.dirname(sys.argv[1]))),
    "socketpair": attempt(pair),
    "tcp_socket": attempt(tcp),
}))
"""


class Listener:
    """A unix socket listening where the API's would: counts what connects."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.accepted = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    made = State(tmp_path)
    yield made
    made.cleanup()


@pytest.fixture
def api_socket(tmp_path: Path) -> Iterator[Listener]:
    run_dir = tmp_path / "run-mission-control"
    run_dir.mkdir(mode=0o750)
    settings = Settings(listen_uds=run_dir / "api.sock")
    assert settings.listen_uds is not None
    listener = Listener(settings.listen_uds)
    yield listener
    listener.close()


async def connect_run(state: State, target: Path, sandboxed: bool) -> dict[str, str]:
    argv = state.agent("connect", CONNECT)
    run = await run_confined(
        [*argv, str(target)],
        stdin_data=b"",
        env={},
        cwd=state.workspace,
        limits=LIMITS,
        sandbox=state.policy() if sandboxed else None,
        tmp_root=state.run_tmp,
    )
    assert run.started and run.exit_code == 0, (run.reason, run.stderr[-2000:])
    result: dict[str, str] = json.loads(run.stdout)
    return result


async def test_without_the_sandbox_an_agent_reaches_the_api_socket(
    state: State, api_socket: Listener
) -> None:
    """The threat is real: the worker's user may traverse the socket directory."""
    seen = await connect_run(state, api_socket.path, sandboxed=False)
    assert seen["connect"] == "ok"
    assert api_socket.accepted == 1


@needs_landlock
async def test_sandboxed_agent_cannot_connect_to_the_api_socket(
    state: State, api_socket: Listener
) -> None:
    seen = await connect_run(state, api_socket.path, sandboxed=True)
    assert seen["connect"] == "EACCES"
    assert api_socket.accepted == 0
    # the directory is outside every allowed hierarchy: not even listed
    assert seen["list_dir"] == "EACCES"
    # what programs need still works: pipes between processes, network sockets
    assert seen["socketpair"] == "ok"
    assert seen["tcp_socket"] == "ok"


@needs_landlock
async def test_the_worker_probe_checks_that_unix_sockets_are_refused(state: State) -> None:
    """The worker's start-up probe (and ``missionctl runner sandbox-check``) tries
    it: a sandbox that lets a run open a unix socket is not reported enforced."""
    report, policy = await probe(
        mode="required",
        database_path=state.db,
        state_dir=state.state,
        secrets_dir=state.secrets,
        backups_dir=state.state / "backups",
    )
    assert report.checks["unix_socket"] == "denied:EACCES", report
    assert report.enforced and policy is not None


def test_the_filter_fails_closed_on_an_unknown_architecture() -> None:
    with pytest.raises(SandboxError, match="riscv64"):
        unix_socket_filter("riscv64")
    for machine in SECCOMP_ARCHES:
        program = unix_socket_filter(machine)
        # every jump lands inside the program (classic BPF jumps forward only)
        for index, (code, jt, jf, _) in enumerate(program):
            if code & 0x07 == 0x05:
                assert index + 1 + max(jt, jf) < len(program)
        assert program[-1][0] == 0x06
