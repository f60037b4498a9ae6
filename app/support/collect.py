"""What goes into a support bundle, one function per member.

Each collector returns text (or JSON-able data) and never raises for a missing
tool or file: it says what it could not collect instead. Nothing here reads row
contents of the database except the action, outcome, time and actor kind of
the newest audit records; every member is redacted afterwards
(``app/support/bundle.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from app import __version__
from app.core.database import Database
from app.core.settings import DEFAULT_ENV_FILE, Settings

#: the units whose state and logs are collected
UNITS = (
    "mission-control.service",
    "mission-control-worker.service",
    "mission-control-backup.service",
    "mission-control-backup.timer",
    "mission-control-monitor.service",
    "mission-control-monitor.timer",
    "mission-control-doctor.service",
    "mission-control-doctor.timer",
    "mission-control-tls-renew.service",
    "mission-control-tls-renew.timer",
    "mission-control-vpn-status.service",
    "mission-control-vpn-status.timer",
    "nginx.service",
    "wg-quick@wg0.service",
)
UNIT_PROPERTIES = (
    "Id,LoadState,ActiveState,SubState,Result,UnitFileState,NRestarts,ExecMainStatus,"
    "ExecMainStartTimestamp,ActiveEnterTimestamp,InactiveEnterTimestamp,"
    "StateChangeTimestamp,MemoryCurrent,LastTriggerUSec,NextElapseUSecRealtime"
)
PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "pydantic",
    "pydantic-settings",
    "aiosqlite",
    "httpx",
    "cryptography",
    "argon2-cffi",
    "psutil",
    "sdnotify",
)
SECRET_NAME_PARTS = (
    "secret",
    "password",
    "passwd",
    "token",
    "credential",
    "webhook_url",
    "api_key",
    "apikey",
    "private",
    "dsn",
)
COMMAND_TIMEOUT_S = 30.0
MIN_SECRET_CHARS = 8
URL_SECRET_PART_CHARS = 16


def run(argv: list[str], timeout_s: float = COMMAND_TIMEOUT_S) -> tuple[int | None, str]:
    """Run a tool without a shell; (exit status or None, stdout + stderr)."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, errors="replace", timeout=timeout_s, check=False
        )
    except FileNotFoundError:
        return None, f"{argv[0]}: not installed here\n"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{argv[0]}: could not run ({type(exc).__name__})\n"
    return done.returncode, done.stdout + (done.stderr if done.stderr.strip() else "")


# --- what is secret ------------------------------------------------------------------


def secret_like(name: str) -> bool:
    folded = name.lower()
    return any(part in folded for part in SECRET_NAME_PARTS)


def _env_file_values(path: Path) -> Iterator[str]:
    """Values of secret-like ``NAME=value`` lines of an env or credential file."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip().strip("'\"")
        if secret_like(name) or path.parent.name == "credentials":
            yield value


def known_secrets(settings: Settings) -> set[str]:
    from app.notifications.channels import url_secrets

    """Exact secret values this host knows: removed from every member whatever their
    format (the credential gate then catches the formats it recognises)."""
    found: set[str] = set()
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif isinstance(value, str) and secret_like(name):
            found.add(value)
            parts = urlsplit(value)
            # the token-like parts of a webhook URL, not words such as "services"
            found.update(p for p in parts.path.split("/") if len(p) >= URL_SECRET_PART_CHARS)
            found.update([parts.query, parts.password or ""])
    for directory in (settings.secrets_dir, settings.profiles_path.parent / "credentials"):
        with contextlib.suppress(OSError):
            for entry in directory.iterdir():
                if entry.is_file():
                    with contextlib.suppress(OSError):
                        found.add(entry.read_text(errors="replace").strip())
                    found.update(_env_file_values(entry))
    with contextlib.suppress(OSError):
        found.add((settings.state_dir / "initial-admin-password").read_text().strip())
    found.update(_env_file_values(Path(os.environ.get("MC_ENV_FILE") or DEFAULT_ENV_FILE)))
    found.update(_profile_secrets(settings))
    found.update(url_secrets(settings.notify_channels_path, URL_SECRET_PART_CHARS))
    return {value for value in found if len(value) >= MIN_SECRET_CHARS}


def _profile_secrets(settings: Settings) -> set[str]:
    from app.profiles.catalog import load_catalog

    quiet = logging.getLogger("mission_control.profiles.catalog")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    values: set[str] = set()
    try:
        catalog = load_catalog(settings)
        for profile in catalog.profiles.values():
            with contextlib.suppress(Exception):
                values.update(catalog.child_env(profile).secret_values)
            with contextlib.suppress(Exception):
                login = catalog.login(profile)  # a subscription login's tokens
                values.update(login.secret_values if login is not None else ())
    except Exception:  # no readable profiles: nothing to add
        return values
    finally:
        quiet.setLevel(level)
    return values


# --- members -------------------------------------------------------------------------


def versions(settings: Settings) -> dict[str, Any]:
    from app.health.release import release_info

    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "mission_control": __version__,
        "release": release_info(settings.release_root, __version__),
        "python": sys.version,
        "python_executable": sys.executable,
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": packages,
    }


def effective_settings(settings: Settings) -> dict[str, Any]:
    """Every setting; secrets (``SecretStr`` and secret-like names) only as set/not set."""
    shown: dict[str, Any] = {}
    for name in sorted(type(settings).model_fields):
        value = getattr(settings, name)
        if isinstance(value, SecretStr) or (isinstance(value, str) and secret_like(name)):
            host = urlsplit(value).hostname if isinstance(value, str) else None
            shown[name] = "[removed: set" + (f", host {host}" if host else "") + "]"
        elif value is None:
            shown[name] = None
        elif isinstance(value, bool | int | float):
            shown[name] = value
        elif isinstance(value, list):
            shown[name] = [str(v) for v in value]
        else:
            shown[name] = str(value)
    return shown


def doctor_report(settings: Settings) -> str:
    from app.doctor import run_checks

    if settings.secret_key is None and not (settings.secrets_dir / "server.key").exists():
        return (
            "doctor not run: the server key does not exist yet (the service creates it on"
            " its first start); running the doctor here would create it with this user as"
            " its owner.\n"
        )
    lines = []
    for check in run_checks(settings):
        label = "PASS" if check.ok else "WARN" if check.warning else "FAIL"
        lines.append(f"{label}  {check.name}: {check.detail}")
    return "\n".join(lines) + "\n"


def unit_states() -> str:
    tool = shutil.which("systemctl")
    if tool is None:
        return "systemctl is not installed here: no unit states (not a systemd host).\n"
    parts = []
    for unit in UNITS:
        _, active = run([tool, "is-active", unit])
        _, shown = run([tool, "show", unit, f"--property={UNIT_PROPERTIES}", "--no-pager"])
        parts.append(f"## {unit}: {active.strip() or '?'}\n{shown.rstrip()}\n")
    _, failed = run([tool, "--failed", "--plain", "--no-legend", "--no-pager"])
    parts.append(f"## failed units\n{failed.rstrip() or '(none)'}\n")
    return "\n".join(parts)


def journal(lines: int) -> str:
    tool = shutil.which("journalctl")
    if tool is None:
        return "journalctl is not installed here: no logs (not a systemd host).\n"
    argv = [tool, "--no-pager", "-o", "short-iso", "-n", str(lines)]
    for unit in UNITS:
        argv += ["-u", unit]
    status, out = run(argv, timeout_s=60)
    note = "" if status == 0 else f"(journalctl exited with {status})\n"
    return note + out


def kernel_and_boots() -> str:
    tool = shutil.which("journalctl")
    if tool is None:
        return "journalctl is not installed here.\n"
    _, boots = run([tool, "--no-pager", "--list-boots"])
    _, kernel = run([tool, "--no-pager", "-k", "-b", "-n", "300", "-o", "short-iso"])
    _, usage = run([tool, "--disk-usage"])
    return f"## boots\n{boots}\n## journal disk usage\n{usage}\n## kernel (this boot)\n{kernel}"


def system_facts(settings: Settings) -> str:
    from app.care.clock import clock_state
    from app.care.disk import DiskGuard

    lines = [f"uname: {' '.join(platform.uname())}"]
    with contextlib.suppress(OSError):
        lines.append("os-release:\n" + Path("/etc/os-release").read_text().strip())
    lines.append(f"clock: {clock_state(settings).as_dict()}")
    for state in DiskGuard(settings).states():
        lines.append(f"disk: {state.as_dict()}")
    state_dir = str(settings.state_dir.absolute())
    with contextlib.suppress(OSError):
        mounts = [
            line
            for line in Path("/proc/mounts").read_text().splitlines()
            if len(line.split()) > 2 and state_dir.startswith(line.split()[1])
        ]
        if mounts:
            lines.append("mount of the state directory: " + max(mounts, key=len))
    with contextlib.suppress(OSError):
        lines.append("uptime: " + Path("/proc/uptime").read_text().split()[0] + " s")
    return "\n".join(lines) + "\n"


class ReadOnlyDatabase(Database):
    """The reader side of :class:`Database` only, opened ``mode=ro``: the bundle
    never writes to the live database."""

    async def open(self) -> None:
        import aiosqlite

        for _ in range(self._readers_wanted):
            conn = await aiosqlite.connect(f"file:{self.path}?mode=ro", uri=True)
            conn.row_factory = aiosqlite.Row
            await conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
            await conn.execute("PRAGMA query_only=ON")
            self._all_readers.append(conn)
            self._pool.put_nowait(conn)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def database_facts(path: Path) -> dict[str, Any]:
    """Schema version, row counts per table, sizes; never a row's contents."""
    facts: dict[str, Any] = {"path": str(path)}
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            facts[f"bytes{suffix or '_db'}"] = Path(f"{path}{suffix}").stat().st_size
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        conn.execute("PRAGMA query_only=ON")
        facts["schema_version"] = conn.execute(
            "SELECT max(version) FROM schema_migrations"
        ).fetchone()[0]
        for pragma in ("journal_mode", "page_size", "page_count", "freelist_count"):
            facts[pragma] = conn.execute(f"PRAGMA {pragma}").fetchone()[0]
        facts["quick_check"] = "; ".join(
            str(r[0]) for r in conn.execute("PRAGMA quick_check(10)").fetchall()
        )
        tables = [
            str(r[0])
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        facts["rows"] = {
            name: conn.execute(f"SELECT count(*) FROM {_quote(name)}").fetchone()[0]
            for name in tables
        }
    finally:
        conn.close()
    return facts


def audit_tail(path: Path, limit: int) -> list[dict[str, Any]]:
    """The newest audit records: id, time, action, outcome and the kind of actor
    (``user``, ``token``, ``system``...). Never the summary (it can hold user text),
    the target, the client address or the actor's name."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT id, ts, action, outcome, actor FROM audit_log ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
    finally:
        conn.close()
    return [
        {
            "id": row[0],
            "ts": row[1],
            "action": row[2],
            "outcome": row[3],
            "actor_kind": str(row[4]).partition(":")[0],
        }
        for row in rows
    ]


async def health(settings: Settings) -> dict[str, Any]:
    """The authenticated health report, from the code behind ``/api/health``."""
    from app.health.details import health_report
    from app.wiring import build_context

    db = ReadOnlyDatabase(settings.database_path, readers=2, busy_timeout_ms=5000)
    await db.open()
    try:
        # no server key: nothing here verifies a credential
        return await health_report(build_context(settings, db, b""))
    finally:
        await db.close()


def run_health(settings: Settings) -> dict[str, Any]:
    return asyncio.run(health(settings))
