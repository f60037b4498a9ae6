"""Check 8: a power cycle. The Pi is stopped, its network namespace thrown away
(addresses, firewall, sysctls: all gone), and an overlay copy of the
provisioned root is booted in a fresh one. With no manual step, every unit,
the tunnel (the laptop is left untouched), nginx and the firewall come back,
and checks 1-3 pass again. Runs last (it replaces the Pi the others used)."""

from __future__ import annotations

import time

import pytest
from e2e_checks import check_lan, check_outside, check_vpn_user_flow
from e2e_support import Testbed, https_client, wait_for

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


@pytest.fixture(scope="module")
def rebooted(testbed: Testbed) -> Testbed:
    before, boot = testbed.pi_pid, int(testbed["BOOT"])
    start = time.monotonic()
    proc = testbed.reboot()
    assert proc.returncode == 0, f"the reboot failed:\n{proc.stderr[-3000:]}"
    assert testbed.pi_pid != before
    assert int(testbed["BOOT"]) == boot + 1
    print(f"rebooted in {time.monotonic() - start:.1f} s (boot {testbed['BOOT']})")
    return testbed


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
