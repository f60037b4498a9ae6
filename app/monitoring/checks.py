"""The checks behind ``missionctl monitor`` (run by a systemd timer).

Each check returns a ``Finding`` or None. Findings become notifications in
the app; one that persists is repeated at most once a day.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.backup.archive import newest_backup_age
from app.core.settings import Settings
from app.health.probes import cpu_temperature_c

REPEAT_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str  # warning or critical
    title: str
    body: str


def check_disk(settings: Settings) -> Finding | None:
    target = settings.state_dir if settings.state_dir.exists() else Path("/")
    usage = shutil.disk_usage(target)
    free_percent = usage.free * 100 / usage.total
    if 100 - free_percent >= settings.monitor_disk_warn_percent:
        return Finding(
            "disk",
            "critical" if free_percent < 3 else "warning",
            "Disk nearly full",
            f"{free_percent:.1f}% free on the state file system ({usage.free // 2**20} MiB).",
        )
    return None


def check_temperature(settings: Settings) -> Finding | None:
    celsius = cpu_temperature_c()
    if celsius is not None and celsius >= settings.monitor_temperature_warn_celsius:
        return Finding("temperature", "warning", "CPU is hot", f"{celsius:.0f} °C.")
    return None


def check_throttling() -> Finding | None:
    """Raspberry Pi firmware reports under-voltage and throttling."""
    tool = shutil.which("vcgencmd")
    if tool is None:
        return None
    try:
        out = subprocess.run(
            [tool, "get_throttled"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
        flags = int(out.strip().split("=")[1], 16)
    except (OSError, IndexError, ValueError, subprocess.TimeoutExpired):
        return None
    if flags & 0xF:
        return Finding(
            "throttling",
            "warning",
            "The Pi is throttled",
            f"get_throttled=0x{flags:x}: check the power supply and cooling.",
        )
    return None


def check_backup_age(settings: Settings) -> Finding | None:
    age = newest_backup_age(settings.backups_path)
    if age is None:
        return Finding("backup", "warning", "No backup yet", "No backup archive was found.")
    if age > timedelta(hours=settings.monitor_backup_max_age_hours):
        hours = int(age.total_seconds() // 3600)
        return Finding("backup", "warning", "Backup is old", f"The newest backup is {hours} h old.")
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
        return Finding("certificate", "warning", "TLS certificate unreadable", str(cert_path))
    left = cert.not_valid_after_utc - (now or datetime.now(UTC))
    if left < timedelta(days=warn_days):
        return Finding(
            "certificate",
            "critical" if left.days < 3 else "warning",
            "TLS certificate expires soon",
            f"{max(left.days, 0)} days left: run 'systemctl start mission-control-tls-renew'.",
        )
    return None


def check_failed_units() -> Finding | None:
    tool = shutil.which("systemctl")
    if tool is None or not Path("/run/systemd/system").exists():
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
        return Finding("units", "critical", "Failed units", ", ".join(units[:10]))
    return None


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


def run_checks(settings: Settings) -> list[Finding]:
    results = [
        check_disk(settings),
        check_temperature(settings),
        check_throttling(),
        check_backup_age(settings),
        check_certificate(settings.monitor_cert_path, settings.monitor_cert_warn_days),
        check_failed_units(),
    ]
    return [r for r in results if r is not None]
