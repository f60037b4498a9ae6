"""pytest wiring for tests/e2e (helpers: tests/support/e2e.py, tests/support/e2e_checks.py).

One testbed for all checks: ``scripts/e2e-pi.sh up`` brings up two stand-in
Pis (trixie and bookworm) and provisions both with one inventory (minutes),
``down`` removes every namespace, mount and process right after the last
end-to-end test (not at the end of a whole ``make test`` session). When
scripts/e2e-pi.sh runs pytest itself it passes MC_E2E_STATE, and the running
testbed is used as is.

Fixtures:

- ``testbed``: the first Pi (inventory host ``pi``, ``MC_E2E_SUITE``: trixie
  by default). Every check runs on it; a new check takes this one.
- ``each_pi``: the same test once per Pi (``[pi]``, then ``[pi2]``: the
  second Pi, the other suite, skipped when the testbed has one Pi only,
  ``MC_E2E_PI2=0``). For the checks both suites must pass: provisioning, the
  VPN user's flow, the LAN and the outside.
- ``second_pi``: the second Pi alone (skipped likewise)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.e2e import HARNESS, SETUP_TIMEOUT_S, Testbed, skip_reason

HERE = Path(__file__).resolve().parent
CACHE = Path(
    os.environ.get("MC_E2E_CACHE")
    or os.environ.get("MC_TESTBED_CACHE")
    or "/var/cache/mission-control-testbed"
)

# the state directory of a testbed this session brought up (and must remove)
_owned: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e_last: runs after the other end-to-end checks (it reboots the Pi)"
    )


def _is_e2e(item: pytest.Item | None) -> bool:
    return item is not None and HERE in Path(str(item.path)).parents


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The reboot check goes last among the end-to-end tests (the others expect
    the Pi as provisioned); the rest of the suite keeps its order."""
    positions = [i for i, item in enumerate(items) if _is_e2e(item)]
    if not positions:
        return
    block = [items[i] for i in positions]
    block.sort(key=lambda item: item.get_closest_marker("e2e_last") is not None)
    for i, item in zip(positions, block, strict=True):
        items[i] = item


def _down() -> None:
    while _owned:
        state_dir = _owned.pop()
        result = subprocess.run(
            [str(HARNESS), "down", "--state-dir", str(state_dir)], check=False, timeout=300
        )
        assert result.returncode == 0, "teardown left something behind (see its output)"


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if _owned and _is_e2e(item) and not _is_e2e(nextitem):
        _down()


# what each end-to-end check printed (its figures), for the summary at the end
_results: list[tuple[str, str, float, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if HERE not in Path(report.fspath).resolve().parents:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        lines = [line for line in report.capstdout.splitlines() if line.strip()]
        outcome = "xfail" if hasattr(report, "wasxfail") else report.outcome
        _results.append((report.nodeid, outcome, report.duration, " | ".join(lines)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The checks' own figures and the harness's stage times in the log (CI
    keeps only its output)."""
    if not any(outcome not in ("skipped", "xfail") for _, outcome, _, _ in _results):
        return
    write = terminalreporter.write_line
    terminalreporter.section("end-to-end checks")
    for nodeid, outcome, duration, text in _results:
        name = nodeid.split("tests/e2e/", 1)[-1]
        write(f"{outcome.upper():8} {duration:6.1f} s  {name}")
        if text:
            write(f"         {text[:1500]}")
    for name in ("e2e-last-timings", "e2e-arm64-last-timings"):
        timings = CACHE / name
        if timings.is_file():
            stages = " ".join(timings.read_text().split("\n")).strip()
            write(f"stages ({name}): {stages}")


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
    _owned.append(state_dir)
    try:
        proc = subprocess.run(up, check=False, timeout=SETUP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _down()
        pytest.fail(f"scripts/e2e-pi.sh up did not finish in {SETUP_TIMEOUT_S} s")
    if proc.returncode != 0:
        # the harness tore down what it had made; its output says what failed
        _owned.remove(state_dir)
        with contextlib.suppress(OSError):
            state_dir.rmdir()
        pytest.fail(f"scripts/e2e-pi.sh up failed (exit {proc.returncode}); see its output above")
    try:
        yield Testbed(state_dir / "state.env")
    finally:
        _down()


@pytest.fixture
def second_pi(testbed: Testbed) -> Testbed:
    """The second stand-in Pi (inventory host ``pi2``, the other suite)."""
    other = testbed.second_pi()
    if other is None:
        pytest.skip("the testbed runs one Pi only (MC_E2E_PI2=0)")
    return other


@pytest.fixture(params=["pi", "pi2"])
def each_pi(request: pytest.FixtureRequest, testbed: Testbed) -> Testbed:
    """Each Pi of the testbed in turn (function scope: no reordering of the checks)."""
    if request.param == "pi":
        return testbed
    other = testbed.second_pi()
    if other is None:
        pytest.skip("the testbed runs one Pi only (MC_E2E_PI2=0)")
    return other
