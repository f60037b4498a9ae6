"""The checks behind ``missionctl monitor`` (run by a systemd timer) and the
``repairs`` list of ``/api/health`` (``app/care/repairs.py``).

Each check returns a ``Finding`` (``app/core/findings.py``) or None: what is
wrong (``title``), why, in plain words (``body``, shown as the repair's
``cause``) and the command or page that fixes it (``fix``). The monitor turns
findings into notifications (one that persists is repeated at most once a day);
the health page lists them. Checks that need the database take what they need as
arguments, so both callers can use them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.backup.archive import newest_backup_age
from app.care.probes import cpu_temperature_c
from app.core.findings import Finding
from app.core.settings import Settings

REPEAT_AFTER = timedelta(hours=24)
#: exists when systemd is the running init (not in a container or a chroot)
SYSTEMD_RUNTIME = Path("/run/systemd/system")
#: the Raspberry Pi firmware driver's throttling flags (no vcgencmd, no /dev/vchiq needed)
THROTTLED_SYSFS = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
#: mc-vpn status is exported every minute; older than this, it is not being refreshed
VPN_STATUS_STALE_S = 15 * 60
BACKUP_FIX = "sudo systemctl start mission-control-backup.service"
FREE_SPACE_FIX = (
    "free space: 'sudo journalctl --vacuum-size=50M', remove old backups"
    " (see 'missionctl backup list'), or move the state to a bigger card"
)


def check_disk(settings: Settings) -> Finding | None:
    from app.care.disk import MIB, DiskGuard

    low = DiskGuard(settings).low()
    if low is not None:
        return Finding(
            "disk",
            "critical",
            "Storage nearly full: changes refused",
            f"Only {low.free_bytes // MIB} MiB of {low.total_bytes // MIB} MiB are free on"
            f" {low.path}, below the reserve of {low.reserve_bytes // MIB} MiB the database"
            " needs, so the service refuses changes (507) until space is freed. Reading works.",
            FREE_SPACE_FIX,
        )
    target = settings.state_dir if settings.state_dir.exists() else Path("/")
    usage = shutil.disk_usage(target)
    free_percent = usage.free * 100 / usage.total
    if 100 - free_percent >= settings.monitor_disk_warn_percent:
        return Finding(
            "disk",
            "critical" if free_percent < 3 else "warning",
            "Disk nearly full",
            f"{free_percent:.1f}% free on the state file system ({usage.free // 2**20} MiB);"
            " when it runs out, the service refuses changes.",
            FREE_SPACE_FIX,
        )
    return None


def check_temperature(settings: Settings) -> Finding | None:
    celsius = cpu_temperature_c()
    if celsius is not None and celsius >= settings.monitor_temperature_warn_celsius:
        return Finding(
            "temperature",
            "warning",
            "CPU is hot",
            f"The CPU is at {celsius:.0f} °C; from about 80 °C the Pi slows itself down.",
            "improve cooling: a heatsink or fan case, free airflow, out of the sun",
        )
    return None


def _throttled_flags() -> int | None:
    try:
        return int(THROTTLED_SYSFS.read_text().strip(), 16)
    except (OSError, ValueError):
        pass
    tool = shutil.which("vcgencmd")
    if tool is None:
        return None
    try:
        out = subprocess.run(
            [tool, "get_throttled"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
        return int(out.strip().split("=")[1], 16)
    except (OSError, IndexError, ValueError, subprocess.TimeoutExpired):
        return None


def check_throttling() -> Finding | None:
    """Raspberry Pi firmware reports under-voltage and throttling."""
    flags = _throttled_flags()
    if flags is None or not flags & 0xF:
        return None
    if flags & 0x1:
        cause = "The power supply's voltage is too low (under-voltage): the Pi slows down"
        cause += " and the SD card can be corrupted."
        fix = "use the official power supply (5.1 V, 3 A; 5 A for a Pi 5) and a short cable"
    else:
        cause = "The Pi is slowing itself down because it is too hot."
        fix = "improve cooling: a heatsink or fan case, free airflow"
    return Finding(
        "throttling", "warning", "The Pi is throttled", f"{cause} (get_throttled=0x{flags:x})", fix
    )


def check_backup_age(settings: Settings) -> Finding | None:
    age = newest_backup_age(settings.backups_path)
    if age is None:
        return Finding(
            "backup",
            "warning",
            "No backup yet",
            "No backup archive was found: a broken SD card would lose everything.",
            BACKUP_FIX,
        )
    if age > timedelta(hours=settings.monitor_backup_max_age_hours):
        hours = int(age.total_seconds() // 3600)
        return Finding(
            "backup",
            "warning",
            "Backup is old",
            f"The newest backup is {hours} h old; the nightly backup has not run or failed"
            " (see 'journalctl -u mission-control-backup.service').",
            BACKUP_FIX,
        )
    return None


def check_certificate(
    cert_path: Path, warn_days: int, now: datetime | None = None
) -> Finding | None:
    if not cert_path.exists():
        return None
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (ValueError, OSError):
        return Finding(
            "certificate",
            "warning",
            "TLS certificate unreadable",
            f"{cert_path} cannot be read as a certificate.",
            "sudo systemctl start mission-control-tls-renew.service",
        )
    left = cert.not_valid_after_utc - (now or datetime.now(UTC))
    if left < timedelta(days=warn_days):
        return Finding(
            "certificate",
            "critical" if left.days < 3 else "warning",
            "TLS certificate expires soon",
            f"The web certificate expires in {max(left.days, 0)} days; browsers will then"
            " refuse the UI. It renews itself by a timer, which has not succeeded.",
            "sudo systemctl start mission-control-tls-renew.service",
        )
    return None


def check_failed_units() -> Finding | None:
    tool = shutil.which("systemctl")
    if tool is None or not SYSTEMD_RUNTIME.exists():
        return None
    try:
        out = subprocess.run(
            [tool, "--failed", "--plain", "--no-legend", "--no-pager"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    units = [line.split()[0] for line in out.splitlines() if line.strip()]
    if units:
        shown = ", ".join(units[:10])
        first = units[0]
        return Finding(
            "units",
            "critical",
            "Failed units",
            f"These services stopped with an error and were not restarted: {shown}.",
            f"see why: 'journalctl -b -u {first} -n 50'; then 'sudo systemctl restart {first}'",
        )
    return None


def check_clock(settings: Settings) -> Finding | None:
    from app.care.clock import clock_state

    state = clock_state(settings)
    if state.synchronised is True:
        return None
    cause = (
        "The clock is not synchronised with network time (the Pi has no battery clock):"
        " retention deletes nothing and times shown may be wrong until it is."
        if state.synchronised is False
        else "Whether the clock is synchronised cannot be told here; retention deletes"
        " nothing until it can."
    )
    return Finding(
        "clock",
        "warning",
        "Clock not synchronised",
        f"{cause} ({state.detail}, source {state.source})",
        "check the network, then 'sudo timedatectl set-ntp true' and 'timedatectl timesync-status'",
    )


def check_vpn_peers(status_path: Path, now: float | None = None) -> list[Finding]:
    """From the JSON ``mc-vpn status --json`` exports (missing file: no VPN, no finding)."""
    try:
        text = status_path.read_text()
    except FileNotFoundError:
        return []
    except OSError:
        text = ""
    try:
        status: Any = json.loads(text)
        peers = status.get("peers", [])
        generated = float(status.get("generated_at", 0))
        if not isinstance(peers, list):
            raise ValueError("peers")
    except (ValueError, AttributeError, TypeError):
        return [
            Finding(
                "vpn",
                "warning",
                "VPN status unreadable",
                f"{status_path} is not the JSON that 'mc-vpn status --json' writes.",
                "sudo systemctl start mission-control-vpn-status.service",
            )
        ]
    findings: list[Finding] = []
    if status.get("up") is False:
        findings.append(
            Finding(
                "vpn",
                "critical",
                "The VPN is down",
                f"The WireGuard interface {status.get('interface', 'wg0')} is down: nobody can"
                " reach the UI from outside the LAN.",
                "sudo systemctl restart wg-quick@wg0; see 'journalctl -u wg-quick@wg0'",
            )
        )
    age = (now if now is not None else time.time()) - generated
    if age > VPN_STATUS_STALE_S:
        findings.append(
            Finding(
                "vpn_status",
                "warning",
                "VPN status is stale",
                f"The VPN peer status was last exported {int(age // 60)} minutes ago.",
                "systemctl status mission-control-vpn-status.timer",
            )
        )
    never = sorted(
        str(peer.get("name", "?"))
        for peer in peers
        if isinstance(peer, dict) and not peer.get("latest_handshake")
    )
    if never:
        first = never[0]
        findings.append(
            Finding(
                "vpn_peer",
                "warning",
                "VPN peer never connected",
                f"No handshake ever from: {', '.join(never[:10])}. The device has not imported"
                " its configuration, or cannot reach the Pi (router port forwarding of the"
                " WireGuard UDP port, 51820 by default).",
                f"on the device, import the config: 'sudo mc-vpn show {first} --qr' and scan"
                " it in the WireGuard app (a device added on the VPN page was shown once:"
                " revoke it there and add it again); check the router forwards UDP 51820"
                " to the Pi",
            )
        )
    return findings


def check_circuits(states: list[str]) -> list[Finding]:
    """From the ``state`` JSON of the live rows of ``worker_heartbeats``."""
    opened: dict[str, dict[str, Any]] = {}
    for text in states:
        try:
            circuits = json.loads(text)["circuits"]
        except (ValueError, KeyError, TypeError):
            continue
        if not isinstance(circuits, dict):
            continue
        for name, circuit in circuits.items():
            if isinstance(circuit, dict) and circuit.get("state") == "open":
                opened[str(name)] = circuit
    findings: list[Finding] = []
    for name in sorted(opened):
        circuit = opened[name]
        retry = circuit.get("retry_after_s")
        when = ""
        if isinstance(retry, int | float):
            when = f" A trial run is allowed in {int(retry)} s."
        findings.append(
            Finding(
                f"runner_circuit:{name}",
                "critical",
                f"Runner circuit open: {name}",
                f"{circuit.get('consecutive_failures', '?')} runs of agent profile '{name}' failed"
                f" in a row, so its runs are refused for now.{when}",
                "look at the failed runs (page /ui/tasks) and 'journalctl -u"
                " mission-control-worker -n 100'; after fixing the cause,"
                " 'sudo systemctl restart mission-control-worker' closes the circuit",
            )
        )
    return findings


def check_workers(live_workers: int) -> Finding | None:
    if live_workers:
        return None
    return Finding(
        "worker",
        "warning",
        "No worker is running",
        "No worker has reported recently: queued tasks will not start.",
        "sudo systemctl status mission-control-worker; 'journalctl -u mission-control-worker'",
    )


def due(state_file: Path, findings: list[Finding], now: datetime) -> list[Finding]:
    """Findings to announce now: new ones, and persisting ones once a day."""
    try:
        state: dict[str, str] = json.loads(state_file.read_text())
    except (OSError, ValueError):
        state = {}
    announce: list[Finding] = []
    current = {f.check for f in findings}
    for finding in findings:
        last = state.get(finding.check)
        if last is None or now - datetime.fromisoformat(last) >= REPEAT_AFTER:
            announce.append(finding)
            state[finding.check] = now.isoformat()
    for check in list(state):
        if check not in current:
            del state[check]  # resolved: announce again if it comes back
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(state))
    return announce


def host_checks(settings: Settings) -> list[Finding]:
    """The checks that need no database (blocking: files, statvfs, subprocesses)."""
    results = [
        check_disk(settings),
        check_temperature(settings),
        check_throttling(),
        check_backup_age(settings),
        check_certificate(settings.monitor_cert_path, settings.monitor_cert_warn_days),
        check_failed_units(),
        check_clock(settings),
    ]
    return [r for r in results if r is not None] + check_vpn_peers(settings.vpn_status_path)


def run_checks(settings: Settings) -> list[Finding]:
    return host_checks(settings)
