"""The playbook itself on the stand-in Pi: a first run over nsenter, a second run
over SSH through the tunnel that changes nothing, and a container that kept
its hands off the host."""

from __future__ import annotations

from tests.support.e2e import Testbed


def test_second_run_over_the_tunnel_changes_nothing(each_pi: Testbed) -> None:
    """Both Pis of the one inventory, in the same two runs (their own lines of the recap)."""
    tb = each_pi
    assert tb["RUN1_FAILED"] == "0" and tb["RUN1_UNREACHABLE"] == "0"
    assert tb["RUN2_TRANSPORT"].startswith("ssh"), tb["RUN2_TRANSPORT"]
    assert tb["RUN2_FAILED"] == "0" and tb["RUN2_UNREACHABLE"] == "0"
    assert tb["RUN2_CHANGED"] == "0", (
        f"the second site.yml run changed {tb['RUN2_CHANGED']} tasks on {tb.host} "
        f"(the 'changed:' lines of {tb.state_dir}/run2.log, kept after the run in "
        f"/var/cache/mission-control-testbed/e2e-last-logs/run2.log)"
    )
    print(
        f"{tb.host} ({tb.suite}, Python {tb['PI_PYTHON']}): "
        f"run 1 ({tb['RUN1_TRANSPORT']}): {tb['RUN1_SECONDS']} s, changed={tb['RUN1_CHANGED']}; "
        f"run 2 ({tb['RUN2_TRANSPORT']}): {tb['RUN2_SECONDS']} s, changed=0"
    )


def test_the_pi_did_not_touch_the_host_kernel_settings(testbed: Testbed) -> None:
    """The base role writes kernel.*, fs.* and vm.* sysctls inside the Pi; a
    container must not change them on the machine running it."""
    assert testbed["HOST_SYSCTLS_BEFORE"] == testbed["HOST_SYSCTLS_AFTER"]


def test_every_unit_is_up_and_nothing_failed(each_pi: Testbed) -> None:
    tb = each_pi
    for unit in [
        "mission-control.service",
        "mission-control-worker.service",
        "nginx.service",
        "wg-quick@wg0.service",
        "ssh.service",
        "mission-control-backup.timer",
        "mission-control-monitor.timer",
        "mission-control-doctor.timer",
        "mission-control-vpn-status.timer",
        "mission-control-tls-renew.timer",
    ]:
        assert tb.is_active(unit) == "active", f"{unit} is {tb.is_active(unit)}"
    # the play loads the ruleset itself (safely); nftables.service loads it at boot
    assert tb.run(["systemctl", "is-enabled", "nftables.service"]).stdout.strip() == "enabled"
    assert "policy drop" in tb.run(["nft", "list", "chain", "inet", "filter", "input"]).stdout
    failed = tb.run(["systemctl", "--failed", "--no-legend", "--plain"]).stdout.strip()
    assert failed == "", f"failed units on the Pi:\n{failed}"
