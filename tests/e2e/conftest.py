"""pytest wiring for tests/e2e (helpers: e2e_support.py, e2e_checks.py).

One session-scoped stand-in Pi for all checks: ``scripts/e2e-pi.sh up`` brings
it up and provisions it (minutes), ``down`` removes every namespace, mount and
process afterwards. When scripts/e2e-pi.sh runs pytest itself it passes
MC_E2E_STATE, and the running testbed is used as is."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_support import HARNESS, SETUP_TIMEOUT_S, Testbed, skip_reason


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e_last: runs after the other end-to-end checks (it reboots the Pi)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The reboot check goes last: the others expect the Pi as provisioned."""
    items.sort(key=lambda item: item.get_closest_marker("e2e_last") is not None)


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    given = os.environ.get("MC_E2E_STATE")
    if given:
        yield Testbed(Path(given))
        return
    state_dir = Path(tempfile.mkdtemp(prefix="mc-e2e.", dir="/var/tmp"))
    up = [str(HARNESS), "up", "--state-dir", str(state_dir), "--owner-pid", str(os.getpid())]
    down = [str(HARNESS), "down", "--state-dir", str(state_dir)]
    try:
        proc = subprocess.run(up, check=False, timeout=SETUP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        subprocess.run(down, check=False, timeout=300)
        pytest.fail(f"scripts/e2e-pi.sh up did not finish in {SETUP_TIMEOUT_S} s")
    if proc.returncode != 0:
        # the harness tore down what it had made; its output says what failed
        pytest.fail(f"scripts/e2e-pi.sh up failed (exit {proc.returncode}); see its output above")
    try:
        yield Testbed(state_dir / "state.env")
    finally:
        result = subprocess.run(down, check=False, timeout=300)
        assert result.returncode == 0, "teardown left something behind (see its output)"
