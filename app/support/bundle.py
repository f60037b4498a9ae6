"""Build, redact, write and re-check the support bundle.

Every member passes two filters on its way in:

1. the exact secret values this host knows (``collect.known_secrets``: the
   server key, ``MC_SECRET_KEY``, the webhook URL and its token-like parts,
   secret-like values of the env file, agent credential files) become
   ``[REDACTED:known_secret]``, whatever their format;
2. the credential gate (``redact``) replaces every secret it recognises.

The archive (tar.gz, mode 0600, written to a temporary file beside the target
and renamed) is then opened again and every member's bytes are scanned with
both filters; if anything is found, the archive is deleted and the command
fails: a bundle that might leak is never left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
import tarfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app import __version__
from app.core.settings import Settings
from app.security.credential_gate import contains_credential, redact
from app.support import collect

KNOWN_SECRET_MARKER = "[REDACTED:known_secret]"  # noqa: S105 - a marker

README = """Mission Control support bundle
==============================

Made by 'missionctl support-bundle' on {host} at {made} (Mission Control {version}).

Members
-------
versions.json     Mission Control, Python, SQLite, platform and key package versions;
                  the running, current and previous release
settings.json     the effective settings; secrets only as "[removed: set]"
doctor.txt        'missionctl doctor' (security self-check)
units.txt         systemctl is-active / show (selected properties) of the
                  Mission Control units, nginx and wg-quick@wg0; failed units
logs.txt          the last {log_lines} journal lines of those units
kernel.txt        boots (unclean shutdowns show here), journal disk usage,
                  the kernel's messages of this boot (SD card, under-voltage)
system.txt        uname, os-release, clock synchronisation, free space,
                  mount options of the state directory, uptime
health.json       the authenticated health report (as GET /api/health),
                  with its repairs list
database.json     schema version, row counts per table, sizes, quick_check:
                  never a row's contents
audit.json        the newest {audit_records} audit records: id, time, action,
                  outcome and the kind of actor only (no summaries, which can
                  hold user text; no targets, addresses or names)
errors.txt        what could not be collected, and why
manifest.json     sha256 and size of every member, what was redacted

Redaction
---------
Every member went through the host's exact secret values and the credential
gate (eleven kinds of secret) on its way in, and the finished archive was
scanned again before it was kept. Redacted text reads [REDACTED:<kind>].
Still, read it before you send it.
"""


class BundleError(RuntimeError):
    """The bundle could not be written, or failed its final scan (then it is deleted)."""


@dataclass
class Redactor:
    """Known exact values first (longest first), then the credential gate."""

    secrets: list[str]
    counts: Counter[str] = field(default_factory=Counter)

    @classmethod
    def for_values(cls, values: set[str]) -> Redactor:
        return cls(sorted(values, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for value in self.secrets:
            if value in text:
                self.counts["known_secret"] += text.count(value)
                text = text.replace(value, KNOWN_SECRET_MARKER)
        result = redact(text)
        for kind, count in result.counts.items():
            self.counts[kind.value] += count
        return result.text

    def leaks(self, data: bytes) -> list[str]:
        """What the final scan finds in one member (kinds only, never the value)."""
        text = data.decode("utf-8", "replace")
        found = sorted({"known_secret" for value in self.secrets if value in text})
        if contains_credential(text):
            found.append("credential_gate")
        return found


@dataclass(frozen=True)
class BundleReport:
    path: Path
    size: int
    members: list[str]
    redacted: dict[str, int]
    errors: list[str]


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


@contextlib.contextmanager
def _keep_database_owner(database: Path) -> Any:
    """Run as root, SQLite may create ``-wal``/``-shm`` files owned by root, which
    the service could then not open: give any such file the database's owner."""
    try:
        yield
    finally:
        if os.geteuid() == 0:
            with contextlib.suppress(OSError):
                owner = database.stat()
                for suffix in ("-wal", "-shm"):
                    path = Path(f"{database}{suffix}")
                    with contextlib.suppress(OSError):
                        info = path.stat()
                        if (info.st_uid, info.st_gid) != (owner.st_uid, owner.st_gid):
                            os.chown(path, owner.st_uid, owner.st_gid)


def default_output(now: datetime | None = None) -> Path:
    moment = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())
    return Path(f"mission-control-support-{host or 'host'}-{moment}.tar.gz")


def gather(
    settings: Settings, *, log_lines: int, audit_records: int
) -> tuple[dict[str, str], list[str]]:
    """Every member as text (not yet redacted), and what could not be collected."""
    errors: list[str] = []
    members: dict[str, str] = {}

    def attempt(name: str, producer: Callable[[], Any]) -> None:
        try:
            value = producer()
        except Exception as exc:  # one member failing must not lose the others
            errors.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
            return
        members[name] = value if isinstance(value, str) else _json(value)

    db = settings.database_path
    with _keep_database_owner(db):
        attempt("versions.json", lambda: collect.versions(settings))
        attempt("settings.json", lambda: collect.effective_settings(settings))
        attempt("doctor.txt", lambda: collect.doctor_report(settings))
        attempt("units.txt", collect.unit_states)
        attempt("logs.txt", lambda: collect.journal(log_lines))
        attempt("kernel.txt", collect.kernel_and_boots)
        attempt("system.txt", lambda: collect.system_facts(settings))
        if db.exists():
            attempt("health.json", lambda: collect.run_health(settings))
            attempt("database.json", lambda: collect.database_facts(db))
            attempt("audit.json", lambda: collect.audit_tail(db, audit_records))
        else:
            errors.append(f"database: {db} does not exist; no health, counts or audit")
    return members, errors


def _add(archive: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(f"mission-control-support/{name}")
    info.size = len(data)
    info.mode = 0o600
    info.mtime = int(mtime)
    info.uname = info.gname = "root"
    archive.addfile(info, io.BytesIO(data))


def _final_scan(path: Path, redactor: Redactor) -> list[str]:
    problems: list[str] = []
    with tarfile.open(path, "r:gz") as archive:
        for member in archive.getmembers():
            name_leaks = redactor.leaks(member.name.encode())
            if name_leaks:
                problems.append(f"member name {member.name!r}: {', '.join(name_leaks)}")
            if not member.isfile():
                continue
            handle = archive.extractfile(member)
            data = handle.read() if handle is not None else b""
            leaks = redactor.leaks(data)
            if leaks:
                problems.append(f"{member.name}: {', '.join(leaks)}")
    return problems


def write_bundle(
    settings: Settings,
    output: Path | None = None,
    *,
    log_lines: int | None = None,
    audit_records: int | None = None,
) -> BundleReport:
    lines = settings.support_log_lines if log_lines is None else log_lines
    records = settings.support_audit_records if audit_records is None else audit_records
    target = (output or default_output()).absolute()
    if target.exists():
        raise BundleError(f"{target} exists; choose another --output")
    redactor = Redactor.for_values(collect.known_secrets(settings))
    raw, errors = gather(settings, log_lines=lines, audit_records=records)
    now = time.time()
    made = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    raw["README.txt"] = README.format(
        host=socket.gethostname(),
        made=made,
        version=__version__,
        log_lines=lines,
        audit_records=records,
    )
    raw["errors.txt"] = "\n".join(errors) + "\n" if errors else "(nothing failed)\n"
    encoded = {name: redactor(text).encode() for name, text in raw.items()}
    manifest = {
        "made_at": made,
        "version": __version__,
        "members": {
            name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in sorted(encoded.items())
        },
        "redacted": dict(sorted(redactor.counts.items())),
    }
    encoded["manifest.json"] = redactor(_json(manifest)).encode()

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle, tarfile.open(fileobj=handle, mode="w:gz") as archive:
            for name in ("README.txt", *sorted(n for n in encoded if n != "README.txt")):
                _add(archive, name, encoded[name], now)
        problems = _final_scan(partial, redactor)
        if problems:
            raise BundleError(
                "the finished bundle still held something secret-looking, so it was"
                f" deleted: {'; '.join(problems)}"
            )
        partial.replace(target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise
    return BundleReport(
        path=target,
        size=target.stat().st_size,
        members=sorted(encoded),
        redacted=dict(redactor.counts),
        errors=errors,
    )
