"""A same-uid agent must not read the worker's environment through /proc (F24).

The clean child environment is worth little if the agent can read
``/proc/<worker>/environ`` or ptrace the worker: both are open to any process of
the same uid while the worker is dumpable. ``harden_worker_process`` closes that.
The scenario runs a "worker" as uid 65534 with a secret in its environment, and an
"agent" (the system Python, reachable by that uid) that tries to read it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SYSTEM_PYTHON = Path("/usr/bin/python3")
SECRET = "mc-worker-secret-0123456789abcdef"

WORKER = textwrap.dedent(
    """
    import ctypes, os, subprocess, sys
    from app.runner.process import harden_worker_process
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # an ordinary, dumpable worker process
    if sys.argv[1] == "harden":
        assert harden_worker_process()
    agent = '''
    import os
    try:
        data = open(f"/proc/{os.getppid()}/environ", "rb").read()
        print("LEAKED" if b"MC_SECRET_KEY" in data else "no-secret")
    except OSError as exc:
        print("denied", type(exc).__name__)
    '''
    done = subprocess.run([sys.argv[2], "-c", agent], capture_output=True, env={}, cwd="/")
    print(done.stdout.decode().strip())
    """
)

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="Linux /proc and prctl"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to uid 65534"),
    pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs /usr/bin/python3"),
]


def run_worker(mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", WORKER, mode, str(SYSTEM_PYTHON)],
        capture_output=True,
        env={"MC_SECRET_KEY": SECRET, "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).resolve().parents[2],
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


def test_unhardened_worker_environment_is_readable_by_a_same_uid_agent():
    """The threat is real: this is what harden_worker_process prevents."""
    assert run_worker("plain") == "LEAKED"


def test_hardened_worker_environment_is_not_readable():
    assert run_worker("harden").startswith("denied")
