"""Check 5: systemd keeps the API alive. ``kill -9``: restarted (Restart=on-failure)
and the UI answers again; ``kill -STOP``: the process stops pinging the
watchdog and is restarted within WatchdogSec plus a few seconds."""

from __future__ import annotations

import re
import time

from tests.support.e2e import REPO, Testbed, https_client, timespan_s, wait_for

UNIT = "mission-control.service"
SYSTEMD = REPO / "systemd"
# after the watchdog fires: RestartSec= and a start-up of a second or two
SLACK_S = 5


def _serving(tb: Testbed) -> bool:
    with https_client(tb) as client:
        return client.get("/").status_code == 200 and client.get("/healthz").status_code == 200


def _restarted(tb: Testbed, old: int) -> int:
    pid = tb.main_pid(UNIT)
    return pid if pid not in (0, old) and tb.is_active(UNIT) == "active" else 0


def test_kill_9_is_restarted_and_the_ui_answers_again(testbed: Testbed) -> None:
    tb = testbed
    assert _serving(tb)
    old = tb.main_pid(UNIT)
    restarts = int(tb.unit(UNIT, "NRestarts"))
    start = time.monotonic()
    tb.run(["kill", "-9", str(old)])
    new = wait_for("systemd to restart the API after kill -9", lambda: _restarted(tb, old), 30)
    wait_for("the UI through the tunnel after the restart", lambda: _serving(tb), 30)
    took = time.monotonic() - start
    assert int(tb.unit(UNIT, "NRestarts")) == restarts + 1
    print(f"kill -9 {old}: new main pid {new}, serving again after {took:.1f} s")


def test_kill_stop_is_restarted_by_the_watchdog(testbed: Testbed) -> None:
    tb = testbed
    watchdog_s = tb.seconds(UNIT, "WatchdogUSec")
    assert watchdog_s > 0, "the API unit has no watchdog"
    promised = re.search(r"^WatchdogSec=(\S+)", (SYSTEMD / UNIT).read_text(), re.M)
    assert promised and watchdog_s == timespan_s(promised.group(1)), (
        f"the running API's watchdog is {watchdog_s} s, systemd/{UNIT} says "
        f"{promised.group(1) if promised else 'nothing'}"
    )
    restart_s = tb.seconds(UNIT, "RestartUSec")
    bound = watchdog_s + restart_s + SLACK_S
    assert _serving(tb)
    old = tb.main_pid(UNIT)
    since = tb.run(["date", "+%Y-%m-%d %H:%M:%S"]).stdout.strip()
    start = time.monotonic()
    tb.run(["kill", "-STOP", str(old)])
    try:
        new = wait_for(
            "the watchdog to replace the stopped API",
            lambda: _restarted(tb, old),
            bound + 10,
            interval_s=0.5,
        )
    finally:
        tb.run(["kill", "-CONT", str(old)], check=False)
    took = time.monotonic() - start
    log = tb.run(["journalctl", "-u", UNIT, "--since", since, "--no-pager", "-o", "cat"]).stdout
    assert "Watchdog timeout" in log, f"no watchdog timeout in the journal:\n{log[-2000:]}"
    assert took <= bound, (
        f"restarted after {took:.1f} s > WatchdogSec {watchdog_s} + RestartSec {restart_s} "
        f"+ {SLACK_S}"
    )
    assert took >= watchdog_s - 2, (
        f"restarted after {took:.1f} s: not by the watchdog ({watchdog_s} s)?"
    )
    wait_for("the UI through the tunnel after the watchdog restart", lambda: _serving(tb), 30)
    print(
        f"kill -STOP {old}: watchdog ({watchdog_s:.0f} s) restarted it as {new} after {took:.1f} s"
    )
