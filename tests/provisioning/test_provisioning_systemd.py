"""The canonical unit files in systemd/: clean `systemd-analyze verify`, the
sandbox score targets (API <= 1.0, worker <= 2.0) and no regression from
the scores reached, the directives the scores cannot see (watchdog, restart
limits, directories), and nginx ordered after the tunnel."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.support.provisioning import SYSTEMD, need_root, need_tool, run

UNITS = (
    sorted(p.name for p in SYSTEMD.glob("*.service"))
    + sorted(p.name for p in SYSTEMD.glob("*.timer"))
    + sorted(p.name for p in SYSTEMD.glob("*.socket"))
)
SERVICES = sorted(p.name for p in SYSTEMD.glob("*.service"))

# Hardening targets, as `systemd-analyze security --threshold` integers (x10).
TARGETS = {
    "mission-control.service": 10,
    "mission-control-worker.service": 20,
    "mission-control-notify.service": 15,
}
# The scores these units reach today (systemd 252): any weakening fails.
BASELINE = {
    "mission-control.service": 0.2,
    "mission-control-worker.service": 1.2,
    "mission-control-backup.service": 0.2,
    "mission-control-monitor.service": 0.2,
    "mission-control-doctor.service": 0.2,
    "mission-control-vpn-status.service": 1.4,
    "mission-control-vpn-helper.service": 1.6,
    "mission-control-tls-renew.service": 0.7,
    "mission-control-notify.service": 0.9,
}
# Programs the units start; stand-ins are mounted for `verify` to find.
# the units run the release the current link points at (provisioning/update.yml)
CURRENT_MISSIONCTL = "/opt/mission-control/current/venv/bin/missionctl"
EXECUTABLES = [
    CURRENT_MISSIONCTL,
    "/usr/local/sbin/mc-vpn",
    "/usr/local/sbin/mc-tls",
]


def parse_unit(path: Path) -> dict[str, list[str]]:
    """Section.Key -> values, in order (systemd allows repeated keys)."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return values


def exposure(unit: str) -> float:
    proc = run(["systemd-analyze", "security", "--offline=true", str(SYSTEMD / unit)])
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    assert match, f"no exposure level in:\n{proc.stdout}\n{proc.stderr}"
    return float(match.group(1))


def test_every_unit_is_listed() -> None:
    assert set(SERVICES) == set(BASELINE), "add new units to BASELINE (and check their score)"


def test_verify_prints_nothing(tmp_path: Path) -> None:
    """`systemd-analyze verify` exits 0 on unknown keys and typos: any output
    fails. The programs the units start do not exist on a test machine: in a
    private mount namespace, an empty tmpfs over /opt and /usr/local/sbin gets
    stand-ins for them (the host's own files are not touched)."""
    need_root()
    need_tool("systemd-analyze", "unshare")
    script = ["set -e", "mount --make-rprivate /"]
    for mount_point in sorted({"/opt", *(str(Path(e).parent) for e in EXECUTABLES[1:])}):
        script.append(f"mount -t tmpfs tmpfs {mount_point}")
    for exe in EXECUTABLES:
        script += [
            f"mkdir -p {Path(exe).parent}",
            f"printf '#!/bin/sh\\nexit 0\\n' > {exe}",
            f"chmod 755 {exe}",
        ]
    script.append("systemd-analyze verify " + " ".join(str(SYSTEMD / u) for u in UNITS))
    proc = run(["unshare", "--mount", "sh", "-c", "\n".join(script)])
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 0 and not output, f"systemd-analyze verify:\n{output}"


def test_nginx_drop_in_verifies_and_orders_after_the_tunnel(tmp_path: Path) -> None:
    need_tool("systemd-analyze")
    nginx_unit = Path("/lib/systemd/system/nginx.service")
    if not nginx_unit.exists():
        pytest.skip("nginx is not installed (scripts/install-test-deps.sh installs it)")
    shutil.copy(nginx_unit, tmp_path / "nginx.service")
    shutil.copytree(SYSTEMD / "nginx.service.d", tmp_path / "nginx.service.d")
    proc = run(["systemd-analyze", "verify", str(tmp_path / "nginx.service")])
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 0 and not output, output
    drop_in = parse_unit(SYSTEMD / "nginx.service.d" / "mission-control.conf")
    # nginx binds the tunnel address: without this it fails on reboot
    assert "wg-quick@wg0.service" in " ".join(drop_in.get("Unit.After", []))
    assert "wg-quick@wg0.service" in " ".join(drop_in.get("Unit.Wants", []))
    assert drop_in.get("Service.Restart") == ["on-failure"]


@pytest.mark.parametrize("unit", sorted(TARGETS))
def test_exposure_meets_the_issue_target(unit: str) -> None:
    need_tool("systemd-analyze")
    proc = run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            f"--threshold={TARGETS[unit]}",
            str(SYSTEMD / unit),
        ]
    )
    assert proc.returncode == 0, f"{unit} exposure above {TARGETS[unit] / 10}:\n" + "\n".join(
        line for line in proc.stdout.splitlines() if "✗" in line or "Overall" in line
    )


@pytest.mark.parametrize("unit", sorted(BASELINE))
def test_exposure_does_not_regress(unit: str) -> None:
    """Removing any scored hardening line raises the score and fails here,
    even when the unit would still meet the looser issue target."""
    need_tool("systemd-analyze")
    score = exposure(unit)
    assert score <= BASELINE[unit], f"{unit}: exposure {score} > baseline {BASELINE[unit]}"


def test_api_unit_contract() -> None:
    api = parse_unit(SYSTEMD / "mission-control.service")
    expect = {
        "Service.Type": ["notify"],
        "Service.WatchdogSec": ["30"],
        "Service.Restart": ["on-failure"],
        "Service.User": ["mission-control"],
        "Service.RuntimeDirectory": ["mission-control"],
        "Service.RuntimeDirectoryMode": ["0750"],
        # the worker's InaccessiblePaths= mount would not survive a re-made directory
        "Service.RuntimeDirectoryPreserve": ["yes"],
        "Service.StateDirectory": ["mission-control"],
        "Service.StateDirectoryMode": ["0700"],
        "Service.ConfigurationDirectory": ["mission-control"],
        "Service.EnvironmentFile": ["/etc/mission-control/env"],
        "Service.PrivateNetwork": ["yes"],
        "Service.RestrictAddressFamilies": ["AF_UNIX"],
        "Service.ProtectSystem": ["strict"],
        "Service.UMask": ["0077"],
        "Unit.StartLimitBurst": ["5"],
        "Unit.StartLimitIntervalSec": ["300"],
        "Unit.OnFailure": ["mission-control-monitor.service"],
    }
    for key, value in expect.items():
        assert api.get(key) == value, f"{key}: {api.get(key)} != {value}"
    exec_start = api["Service.ExecStart"][0]
    assert exec_start.startswith("/opt/mission-control/current/venv/bin/missionctl serve --uds ")
    assert exec_start.endswith("/run/mission-control/api.sock")
    # only nginx (www-data) may reach the socket: the app trusts its headers
    assert api["Service.ExecStartPre"] == ["+/usr/bin/chgrp www-data /run/mission-control"]


def test_every_missionctl_unit_runs_the_current_release() -> None:
    """The units start the release the current link points at (provisioning/update.yml
    switches it), never a fixed venv."""
    starts = {
        unit.name: parse_unit(unit).get("Service.ExecStart", [])
        for unit in sorted(SYSTEMD.glob("mission-control*.service"))
    }
    missionctl = {name: s for name, s in starts.items() if any("missionctl" in e for e in s)}
    assert set(missionctl) >= {
        "mission-control.service",
        "mission-control-worker.service",
        "mission-control-backup.service",
        "mission-control-monitor.service",
        "mission-control-doctor.service",
    }
    for name, lines in missionctl.items():
        for line in lines:
            assert line.startswith(f"{CURRENT_MISSIONCTL} "), (name, line)


def test_worker_unit_contract() -> None:
    worker = parse_unit(SYSTEMD / "mission-control-worker.service")
    assert worker["Service.Type"] == ["notify"]
    assert worker["Service.ExecStart"] == [f"{CURRENT_MISSIONCTL} worker"]
    assert worker["Service.WatchdogSec"] == ["60"]
    assert worker["Service.Restart"] == ["on-failure"]
    # no inbound: nothing in the worker (agents included) can bind an IP port
    assert worker["Service.SocketBindDeny"] == ["any"]
    # the API's keys are not the worker's; nor is the API's socket directory, and a
    # worker that cannot hide it does not start (no "-")
    assert worker["Service.InaccessiblePaths"] == [
        "-/var/lib/mission-control/secrets",
        "/run/mission-control",
    ]
    assert "mission-control.service" in " ".join(worker["Unit.After"]).split()
    assert worker["Service.CapabilityBoundingSet"] == [""]
    assert worker["Service.NoNewPrivileges"] == ["yes"]
    # the agents' Landlock sandbox: systemd 252's @system-service lacks these three,
    # and the allow-list entry must come before the ~ (deny) entries
    filters = worker["Service.SystemCallFilter"]
    assert filters[0] == "@system-service"
    landlock = "landlock_create_ruleset landlock_add_rule landlock_restrict_self"
    assert landlock in filters
    assert filters.index(landlock) < min(i for i, f in enumerate(filters) if f.startswith("~"))


@pytest.mark.parametrize(
    ("timer", "key"),
    [
        ("mission-control-backup.timer", "Timer.RandomizedDelaySec"),
        ("mission-control-backup.timer", "Timer.OnCalendar"),
        ("mission-control-backup.timer", "Timer.Persistent"),
        ("mission-control-monitor.timer", "Timer.OnUnitActiveSec"),
        ("mission-control-doctor.timer", "Timer.OnCalendar"),
        ("mission-control-vpn-status.timer", "Timer.OnUnitActiveSec"),
        ("mission-control-tls-renew.timer", "Timer.OnCalendar"),
    ],
)
def test_timers_are_scheduled(timer: str, key: str) -> None:
    values = parse_unit(SYSTEMD / timer)
    assert values.get(key), f"{timer} has no {key}"
    assert values.get("Install.WantedBy") == ["timers.target"]


def test_vpn_status_is_the_only_root_unit_and_holds_one_capability() -> None:
    for unit in SERVICES:
        values = parse_unit(SYSTEMD / unit)
        if unit in {
            "mission-control-vpn-status.service",
            "mission-control-tls-renew.service",
            "mission-control-vpn-helper.service",
        }:
            continue
        assert values.get("Service.User") == ["mission-control"], f"{unit} runs as root"
    status = parse_unit(SYSTEMD / "mission-control-vpn-status.service")
    assert status["Service.CapabilityBoundingSet"] == ["CAP_NET_ADMIN"]
    assert status["Service.Group"] == ["mission-control"]
    renew = parse_unit(SYSTEMD / "mission-control-tls-renew.service")
    assert renew["Service.CapabilityBoundingSet"] == [""]


def test_vpn_helper_is_root_with_one_capability_for_the_api_only() -> None:
    """The VPN page's root helper (docs/vpn.md): CAP_NET_ADMIN only, writes only
    /etc/wireguard, no network of its own; its socket is for the group
    mission-control, and the helper checks the caller's uid and unit."""
    helper = parse_unit(SYSTEMD / "mission-control-vpn-helper.service")
    assert helper["Service.CapabilityBoundingSet"] == ["CAP_NET_ADMIN"]
    assert helper["Service.ReadWritePaths"] == ["/etc/wireguard"]
    assert helper["Service.ProtectSystem"] == ["strict"]
    assert helper["Service.IPAddressDeny"] == ["any"]
    assert helper["Service.NoNewPrivileges"] == ["yes"]
    command = helper["Service.ExecStart"][0].split()
    assert command[command.index("--allow-user") + 1] == "mission-control"
    assert command[command.index("--allow-unit") + 1] == "mission-control.service"
    assert "--any-unit" not in command and "--listen" not in command
    socket_unit = parse_unit(SYSTEMD / "mission-control-vpn-helper.socket")
    assert socket_unit["Socket.SocketGroup"] == ["mission-control"]
    assert socket_unit["Socket.SocketMode"] == ["0660"]
    assert socket_unit["Socket.ListenStream"] == ["/run/mission-control-vpn-helper.sock"]
    assert socket_unit["Socket.Accept"] == ["no"]
