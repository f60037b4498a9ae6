"""``missionctl doctor``: a security self-check of this install, in plain words."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from app.core.migrations import bundled_migrations, schema_version
from app.core.serve import ListenRefused, check_listen
from app.core.settings import DEFAULT_ENV_FILE, Settings
from app.security.secrets import SecretError, server_key


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    #: a problem worth saying that is not a misconfiguration: WARN, exit status unchanged
    warning: bool = False


def _private(path: Path) -> bool:
    return not stat.S_IMODE(path.stat().st_mode) & 0o077


def check_listen_address(settings: Settings) -> Check:
    try:
        where = check_listen(settings)
    except ListenRefused as exc:
        return Check("listen address", False, str(exc))
    return Check("listen address", True, f"listens on {where}")


def check_proxy(settings: Settings) -> Check:
    if settings.behind_proxy and not settings.trusted_proxies:
        return Check("proxy", False, "behind a proxy but MC_TRUSTED_PROXIES is empty")
    if settings.listen_uds is None and not settings.behind_proxy:
        return Check("proxy", True, "direct loopback listener (development); no TLS proxy needed")
    return Check("proxy", True, f"forwarded headers trusted from {settings.trusted_proxies}")


def check_secrets(settings: Settings) -> Check:
    try:
        server_key(settings.secrets_dir, settings.secret_key)
    except SecretError as exc:
        return Check("server key", False, str(exc))
    if settings.secret_key is None and not _private(settings.secrets_dir):
        return Check("server key", False, f"{settings.secrets_dir} is readable by others")
    return Check("server key", True, "present, private and not a placeholder")


def check_database(settings: Settings) -> Check:
    path = settings.database_path
    if not path.exists():
        return Check("database", False, f"{path} does not exist: run 'missionctl db migrate'")
    if not _private(path):
        mode = stat.S_IMODE(path.stat().st_mode)
        return Check("database", False, f"{path} has mode {mode:o}: run chmod 600 {path}")
    latest = bundled_migrations()[-1].version
    current = schema_version(path)
    if current != latest:
        return Check("database", False, f"schema {current}, expected {latest}: migrate")
    return Check("database", True, f"{path} is private, schema version {current}")


def check_env_file() -> Check:
    path = Path(os.environ.get("MC_ENV_FILE") or DEFAULT_ENV_FILE)
    if not path.exists():
        return Check("env file", True, f"{path} not present (settings from the environment)")
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    # 0600, or 0640 owned by root with the service's group (what provisioning writes)
    group_read_ok = info.st_uid == 0 and not mode & 0o037
    if mode & 0o077 and not group_read_ok:
        return Check(
            "env file", False, f"{path} has mode {mode:o}: run chmod 600 (or 640 root:group) {path}"
        )
    return Check("env file", True, f"{path} is private (mode {mode:o})")


def check_credentials(settings: Settings) -> Check:
    import sqlite3

    path = settings.database_path
    if not path.exists():
        return Check("credentials", False, "no database yet, so nobody can log in")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        admins = conn.execute(
            "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0"
        ).fetchone()[0]
        tokens = conn.execute(
            "SELECT count(*) FROM api_tokens WHERE scope = 'admin' AND revoked_at IS NULL"
        ).fetchone()[0]
    except sqlite3.Error:
        return Check("credentials", False, "the user tables are missing: migrate")
    finally:
        conn.close()
    if admins + tokens == 0:
        return Check("credentials", False, "no admin user or token: 'missionctl user create'")
    return Check("credentials", True, f"{admins} admin user(s), {tokens} admin token(s)")


def check_audit_chain(settings: Settings) -> Check:
    from app.core.database import Database
    from app.security import audit

    if not settings.database_path.exists():
        return Check("audit log", False, "no database")

    async def verify() -> audit.ChainReport:
        db = Database(settings.database_path, readers=1)
        await db.open()
        try:
            return await audit.verify(db)
        finally:
            await db.close()

    report = asyncio.run(verify())
    if report.ok:
        return Check("audit log", True, f"hash chain intact ({report.checked} records)")
    return Check("audit log", False, f"tampered at record {report.first_bad_id}: {report.reason}")


def check_clock(settings: Settings) -> Check:
    """A Pi has no battery clock: until NTP synchronised it, dates are wrong."""
    from app.care.clock import clock_state

    state = clock_state(settings)
    if state.synchronised is True:
        return Check("clock", True, f"synchronised ({state.source})")
    return Check(
        "clock",
        False,
        f"{state.detail} ({state.source}); retention waits for it."
        " Check the network, then 'timedatectl timesync-status'",
        warning=True,
    )


def check_serving(settings: Settings) -> Check:
    """Whether the API answers, where it really listens (``serve --port`` may differ
    from the configured address); not running is a warning, not a misconfiguration."""
    from app.care.serving import address_of, probe, recorded

    configured = address_of(settings)
    running = recorded(settings)
    address = running.address if running is not None else configured
    status = probe(address)
    if status is None:
        start = (
            "sudo systemctl start mission-control"
            if settings.listen_uds is not None
            else "make run (or missionctl serve)"
        )
        return Check(
            "serving",
            False,
            f"nothing answers on {address}: is the API running? Start it with {start}",
            warning=True,
        )
    where = f"serving on {address}" + (f" (pid {running.pid})" if running else "")
    if address != configured:
        where += f", not on the configured {configured} (MC_HOST, MC_PORT, MC_LISTEN_UDS)"
    if status != "ok":
        return Check(
            "serving", False, f"{where}; /healthz says {status}: see /ui/health", warning=True
        )
    return Check("serving", True, f"{where}; /healthz says ok")


def check_initial_password(settings: Settings) -> Check:
    from app.auth.initial import initial_password_path

    path = initial_password_path(settings.state_dir).absolute()
    if not path.exists():
        return Check("first-run password", True, "no generated password left on disk")
    return Check(
        "first-run password",
        False,
        f"{path} still holds the generated admin password: log in and choose your own"
        " (Settings; the file is then removed), or delete the file",
        warning=True,
    )


def check_worker(settings: Settings) -> Check:
    import sqlite3
    from datetime import UTC, datetime, timedelta

    path = settings.database_path
    if not path.exists():
        return Check("worker", False, "no database yet", warning=True)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        newest = conn.execute("SELECT max(seen_at) FROM worker_heartbeats").fetchone()[0]
    except sqlite3.Error:
        newest = None
    finally:
        conn.close()
    quiet = timedelta(seconds=settings.worker_heartbeat_quiet_max_s)
    fix = (
        "sudo systemctl status mission-control-worker"
        if settings.listen_uds is not None
        else "make run starts one beside the API (or missionctl worker)"
    )
    if newest is None:
        return Check("worker", False, f"no worker has ever reported: {fix}", warning=True)
    seen = datetime.fromisoformat(str(newest).replace("Z", "+00:00"))
    age = datetime.now(UTC) - seen
    if age > quiet:
        return Check(
            "worker",
            False,
            f"no worker has reported for {int(age.total_seconds())} s: queued tasks wait. {fix}",
            warning=True,
        )
    return Check("worker", True, f"a worker reported {int(age.total_seconds())} s ago")


def check_profiles(settings: Settings) -> Check:
    from app.profiles.catalog import profiles_status

    status = profiles_status(settings)
    if status.error is not None:
        return Check("profiles", False, f"{status.error}: no agent can run until it is fixed")
    names = ", ".join(f"{name} ({profile.runtime})" for name, profile in status.profiles)
    where = f"bundled example {status.path}" if status.bundled else str(status.path)
    return Check("profiles", True, f"{where}: {names}")


def check_backup(settings: Settings) -> Check:
    from app.care.checks import check_backup_age

    finding = check_backup_age(settings)
    if finding is None:
        return Check("backup", True, f"a recent backup is in {settings.backups_path}")
    fix = finding.fix if settings.listen_uds is not None else "missionctl backup create"
    return Check("backup", False, f"{finding.body} Fix: {fix}", warning=True)


def run_checks(settings: Settings) -> list[Check]:
    return [
        check_listen_address(settings),
        check_serving(settings),
        check_proxy(settings),
        check_secrets(settings),
        check_env_file(),
        check_initial_password(settings),
        check_database(settings),
        check_credentials(settings),
        check_audit_chain(settings),
        check_worker(settings),
        check_profiles(settings),
        check_backup(settings),
        check_clock(settings),
    ]


def run_doctor(settings: Settings) -> int:
    checks = run_checks(settings)
    for check in checks:
        label = "PASS" if check.ok else "WARN" if check.warning else "FAIL"
        print(f"{label}  {check.name}: {check.detail}")
    failed = [c for c in checks if not c.ok and not c.warning]
    warned = [c for c in checks if not c.ok and c.warning]
    passed = len(checks) - len(failed) - len(warned)
    print(f"\n{passed} passed, {len(warned)} warnings, {len(failed)} failed", file=sys.stderr)
    return 1 if failed else 0
