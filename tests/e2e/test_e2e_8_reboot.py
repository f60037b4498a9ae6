"""Check 8: a power cut and the power cycle that follows. While the
laptop is creating tasks through the tunnel, the Pi loses power: SIGKILL to
its PID 1 ends every process at once, no unit stops, nothing is flushed by the
Pi. Its network namespace is thrown away (addresses, firewall, sysctls: all
gone) and an overlay copy of the provisioned root is booted in a fresh one.
With no manual step, every unit, the tunnel (the laptop is left untouched),
nginx and the firewall come back; the database passes ``integrity_check``;
every task whose creation was acknowledged (201) before the cut is there; the
owner is told about the unclean shutdown; checks 1-3 pass again. Runs last (it
replaces the Pi the others used).

What the harness cannot show: the host kernel keeps the container's page
cache, so a write that SQLite did not fsync would survive here too. That part
is ``synchronous=FULL`` (the default, ``MC_DB_SYNCHRONOUS``), checked below in
the running API's settings and by tests/care/test_care_unclean_shutdown.py."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support.e2e import Testbed, https_client, login, wait_for
from tests.support.e2e_checks import check_lan, check_outside, check_vpn_user_flow

pytestmark = pytest.mark.e2e_last

UNITS = [
    "nftables.service",
    "wg-quick@wg0.service",
    "nginx.service",
    "mission-control.service",
    "mission-control-worker.service",
    "ssh.service",
    "mission-control-backup.timer",
    "mission-control-monitor.timer",
    "mission-control-doctor.timer",
    "mission-control-vpn-status.timer",
    "mission-control-tls-renew.timer",
]


WRITERS = 2
WRITE_PAUSE_S = 0.12  # 2 writers: about 16 requests/s, under nginx's 20 r/s per client
LOAD_BEFORE_CUT_S = 4.0
DB = "/var/lib/mission-control/mission-control.db"
UNCLEAN_TITLE = "Unclean shutdown detected"
AGENT = {
    "name": "power cut writer",
    "role": "receives tasks while the power goes",
    "model": "demo-1",
    "profile": "demo",
    "quotas": {"tokens_per_day": 100_000_000, "cost_usd_per_day": 10_000, "runs_per_day": 100_000},
}


@dataclass
class Writes:
    """Task creations sent from the laptop: acknowledged ids, and how many were not."""

    acked: list[int] = field(default_factory=list)
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)


def _writer(
    tb: Testbed, number: int, agent: int, cookies: httpx.Cookies, csrf: dict[str, str], w: Writes
) -> None:
    sent = 0
    with https_client(tb) as client:
        client.cookies = cookies
        while not w.stop.is_set() and sent < 2000:
            sent += 1
            try:
                answer = client.post(
                    "/api/tasks",
                    json={
                        "title": f"power cut {number}-{sent}",
                        "description": "in flight",
                        "agent_id": agent,
                    },
                    headers=csrf,
                    timeout=httpx.Timeout(3.0, connect=1.0),
                )
            except httpx.HTTPError:
                with w.lock:
                    w.failed += 1
                w.stop.wait(0.5)
                continue
            with w.lock:
                if answer.status_code == 201:
                    w.acked.append(int(answer.json()["id"]))
                else:
                    w.failed += 1
            w.stop.wait(WRITE_PAUSE_S)


def _in_pi_db(tb: Testbed, code: str) -> str:
    script = f"import sqlite3; db = sqlite3.connect({DB!r}, timeout=10); {code}"
    proc = tb.run(["python3", "-c", script], check=False)
    assert proc.returncode == 0, f"reading the database on the Pi: {proc.stderr[-2000:]}"
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def power_cut(testbed: Testbed) -> tuple[Testbed, Writes]:
    tb = testbed
    with https_client(tb) as client:
        csrf = login(client, tb)
        cookies = client.cookies
        made = client.post("/api/agents", json=AGENT, headers=csrf)
        assert made.status_code == 201, f"create agent: {made.status_code} {made.text}"
        agent = int(made.json()["id"])
    writes = Writes()
    threads = [
        threading.Thread(target=_writer, args=(tb, n, agent, cookies, csrf, writes), daemon=True)
        for n in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    time.sleep(LOAD_BEFORE_CUT_S)
    before, boot = tb.pi_pid, int(tb["BOOT"])
    start = time.monotonic()
    try:
        proc = tb.reboot(power_cut=True)
    finally:
        writes.stop.set()
        for thread in threads:
            thread.join(15)
    assert proc.returncode == 0, f"the power cut and boot failed:\n{proc.stderr[-3000:]}"
    assert "power cut" in proc.stderr + proc.stdout, "the harness did not cut the power"
    assert tb.pi_pid != before
    assert int(tb["BOOT"]) == boot + 1
    print(
        f"power cut with writes in flight, booted again in {time.monotonic() - start:.1f} s"
        f" (boot {tb['BOOT']}); acknowledged before the cut: {len(writes.acked)},"
        f" not acknowledged: {writes.failed}"
    )
    assert len(writes.acked) >= 10, f"too few writes before the cut: {len(writes.acked)}"
    return tb, writes


@pytest.fixture(scope="module")
def rebooted(power_cut: tuple[Testbed, Writes]) -> Testbed:
    return power_cut[0]


def test_everything_comes_back_by_itself(rebooted: Testbed) -> None:
    tb = rebooted

    def booted() -> str:
        state = tb.run(["systemctl", "is-system-running"], check=False).stdout.strip()
        return state if state in ("running", "degraded") else ""

    state = wait_for("the boot to finish", booted, 60)
    failed = tb.run(["systemctl", "--failed", "--no-legend", "--plain"]).stdout.strip()
    assert state == "running", f"the Pi came back {state}; failed units:\n{failed}"
    inactive = {u: tb.is_active(u) for u in UNITS if tb.is_active(u) != "active"}
    assert not inactive, f"not active after the reboot: {inactive}"
    ruleset = tb.run(["nft", "list", "chain", "inet", "filter", "input"]).stdout
    assert "policy drop" in ruleset, f"no default-drop firewall after the reboot:\n{ruleset}"
    addresses = tb.run(["ip", "-brief", "address", "show", "wg0"]).stdout
    assert tb.tunnel in addresses, f"wg0 after the reboot: {addresses}"
    # the laptop was not touched: its tunnel comes back on its own (keepalive, rekey)
    start = time.monotonic()

    def laptop_served() -> bool:
        with https_client(tb) as client:
            return client.get("/healthz", timeout=2.0).status_code == 200

    wait_for("the laptop's tunnel to recover by itself", laptop_served, 60, interval_s=1.0)
    print(
        f"all units active, ruleset loaded; laptop served "
        f"{time.monotonic() - start:.1f} s after boot"
    )


def test_check_1_again_after_the_reboot(rebooted: Testbed) -> None:
    print(check_vpn_user_flow(rebooted, "after reboot"))


def test_check_2_again_after_the_reboot(rebooted: Testbed) -> None:
    print(check_lan(rebooted))


def test_check_3_again_after_the_reboot(rebooted: Testbed) -> None:
    print(check_outside(rebooted))


def test_the_power_cut_lost_no_acknowledged_write(power_cut: tuple[Testbed, Writes]) -> None:
    tb, writes = power_cut
    wait_for(
        "the API after the power cut",
        lambda: tb.is_active("mission-control.service") == "active",
        60,
    )
    check = _in_pi_db(tb, "print(db.execute('PRAGMA integrity_check').fetchall())")
    assert check == "[('ok',)]", f"integrity_check after the power cut: {check}"
    ids = _in_pi_db(tb, "print(' '.join(str(r[0]) for r in db.execute('SELECT id FROM tasks')))")
    present = {int(x) for x in ids.split()}
    lost = sorted(set(writes.acked) - present)
    assert not lost, f"acknowledged before the power cut, missing after it: {lost[:20]}"
    env = tb.read("/etc/mission-control/env")
    assert "MC_DB_SYNCHRONOUS='normal'" not in env, "the Pi runs with synchronous=NORMAL"
    print(
        f"integrity_check ok; {len(writes.acked)} acknowledged tasks all present"
        f" ({len(present)} tasks in the database)"
    )


def test_the_owner_is_told_about_the_power_cut(power_cut: tuple[Testbed, Writes]) -> None:
    tb, _ = power_cut

    def told() -> list[dict[str, object]]:
        with https_client(tb) as client:
            login(client, tb)
            listing = client.get("/api/notifications", params={"limit": 100})
        if listing.status_code != 200:
            return []
        return [n for n in listing.json()["items"] if n["title"] == UNCLEAN_TITLE]

    notes = wait_for("the unclean-shutdown notification", told, 90, interval_s=2.0)
    body = str(notes[0]["body"])
    assert "lost power" in body, f"the notification does not name the power cut: {body}"
    assert "checked at start: ok" in body, body
    print(f"notified: {body[:160]}")
