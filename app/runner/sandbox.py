"""Per-run filesystem sandbox of an agent with Linux **Landlock**.

What a confined run may touch (an allow-list: whatever is not named is denied):

* **read + execute**: the system hierarchies ``/usr``, ``/bin``, ``/sbin``,
  ``/lib*``, ``/opt``, the worker's Python (``sys.prefix``, ``sys.base_prefix``,
  the real interpreter) and the directory of the profile's program;
* **read only**: ``/etc``, ``/run`` (both *minus* hidden entries: the service's
  configuration and credentials, the API socket, systemd credentials, shadow
  files, private keys), ``/proc``, ``/sys``, ``/dev``, the ``app`` package;
* **read + write (everything)**: the run's own workspace and its private TMPDIR
  (a fresh 0700 directory under the state directory, removed after the run);
* **write**: the character devices a program needs (``/dev/null``, ``/dev/zero``,
  ``/dev/full``, ``/dev/tty``, ``/dev/ptmx``, ``/dev/pts``).

Nothing else: not ``/`` (so not ``/var``, ``/home``, ``/srv``, ``/mnt``), not
``/tmp`` (the "private /tmp" is TMPDIR), not the state directory (the SQLite
database, ``secrets/``, ``backups/`` and the other workspaces). Landlock has no
deny rule, so a hidden entry under ``/etc`` or ``/run`` is left out by allowing
its *siblings* one by one (:func:`_expand`). A policy whose allowed hierarchies
would contain a protected path (the database's directory, the secrets, the
backups) is refused (:class:`SandboxError`), never applied half-way.

Every filesystem right the running kernel's ABI knows is *handled* (so denied
unless a rule allows it): v1 the 13 basic rights, v2 ``REFER`` (rename/link
across directories), v3 ``TRUNCATE``, v5 ``IOCTL_DEV``. From v6 the run is also
*scoped*: it cannot signal processes outside its sandbox (the worker) nor connect
to abstract unix sockets created outside it.

Landlock does not mediate ``connect()`` to a unix socket *file*, so hiding
``/run/mission-control`` above keeps its listing and files unreadable but not its
socket unreachable. A seccomp filter installed with the ruleset
(:func:`app.runner.sandbox_exec.unix_socket_filter`) refuses ``socket(AF_UNIX)``
itself: a run reaches no local service by a socket path (the API, the worker's
notify socket, D-Bus); ``socketpair()`` still works. The worker unit hides the
directory too (``InaccessiblePaths=/run/mission-control``).

Landlock is unprivileged, survives ``execve`` and is inherited by every child, and
needs ``no_new_privs`` (which is set here; the worker unit has
``NoNewPrivileges=yes`` anyway). It is applied in the child by the exec wrapper
:mod:`app.runner.sandbox_exec`. The system calls are 444/445/446 on every
architecture that uses the generic syscall table (x86-64 and aarch64 included).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from app.runner.sandbox_exec import (
    ALL_FS,
    DEVICE_WRITE,
    FS_EXECUTE,
    FS_IOCTL_DEV,
    FS_READ_DIR,
    FS_READ_FILE,
    FS_REFER,
    FS_TRUNCATE,
    FS_WRITE_FILE,
    READ,
    READ_EXEC,
    SANDBOX_FAILED_EXIT,
    SANDBOX_FAILED_MARKER,
    SCOPE_ABSTRACT_UNIX_SOCKET,
    SCOPE_SIGNAL,
    SandboxError,
    check_policy,
    handled_fs_rights,
    kernel_abi,
    parse_policy,
    real,
    restrict_self,
    rules,
    scoped_rights,
    under,
)

__all__ = [
    "ALL_FS",
    "DEVICE_WRITE",
    "FS_EXECUTE",
    "FS_IOCTL_DEV",
    "FS_READ_DIR",
    "FS_READ_FILE",
    "FS_REFER",
    "FS_TRUNCATE",
    "FS_WRITE_FILE",
    "READ",
    "READ_EXEC",
    "SANDBOX_FAILED_EXIT",
    "SANDBOX_FAILED_MARKER",
    "SCOPE_ABSTRACT_UNIX_SOCKET",
    "SCOPE_SIGNAL",
    "LandlockStatus",
    "RunRights",
    "SandboxError",
    "SandboxPolicy",
    "SandboxReport",
    "apply_policy",
    "default_policy",
    "exec_closure",
    "handled_fs_rights",
    "landlock_abi",
    "landlock_status",
    "probe",
    "run_policy",
    "scoped_rights",
    "wrapper_argv",
]

SandboxMode = Literal["auto", "required", "off"]

SYSTEM_READ_EXEC = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/opt")
SYSTEM_READ = ("/etc", "/run", "/proc", "/sys", "/dev")
DEVICE_WRITABLE = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/ptmx", "/dev/pts")
#: left out of the allowed read hierarchies above (their siblings are allowed one by one)
HIDDEN = (
    "/etc/mission-control",
    "/etc/mission-control-tls",
    "/etc/wireguard",
    "/etc/ssh",
    "/etc/ssl/private",
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/run/credentials",
    "/run/secrets",
    "/run/mission-control",
    "/run/mission-control-vpn",
    "/run/user",
    "/run/sudo",
)

# --------------------------------------------------------------------------- ABI


@dataclass(frozen=True, slots=True)
class LandlockStatus:
    """What the kernel offers: ``abi`` 0 means unavailable, ``reason`` says why."""

    abi: int
    reason: str


def landlock_status() -> LandlockStatus:
    """Ask the kernel for its Landlock ABI version (``landlock_create_ruleset(NULL, 0,
    LANDLOCK_CREATE_RULESET_VERSION)``)."""
    try:
        abi, err = kernel_abi()
    except (OSError, AttributeError) as exc:
        return LandlockStatus(0, f"cannot call the kernel ({type(exc).__name__})")
    if abi >= 1:
        return LandlockStatus(abi, f"Landlock ABI {abi}")
    if err == errno.ENOSYS:
        reason = "the kernel was built without Landlock (CONFIG_SECURITY_LANDLOCK)"
    elif err == errno.EOPNOTSUPP:
        reason = (
            "Landlock is built into the kernel but not enabled at boot: add 'landlock'"
            " to the lsm= list of the kernel command line"
        )
    elif err == errno.EPERM:
        reason = "the Landlock system calls are denied (a seccomp filter: SystemCallFilter=)"
    else:
        reason = f"Landlock is unavailable ({errno.errorcode.get(err, err)})"
    return LandlockStatus(0, reason)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when unavailable."""
    return landlock_status().abi


# --------------------------------------------------------------------------- policy


def _real(path: str | os.PathLike[str]) -> str:
    return real(os.fspath(path))


@dataclass(frozen=True, slots=True)
class SandboxPolicy:
    """Which hierarchies a run may use, and which paths must stay out of reach."""

    read_exec: tuple[str, ...] = ()
    read_only: tuple[str, ...] = ()
    read_write: tuple[str, ...] = ()
    #: writable, but nothing in them may be executed (runs without a shell)
    read_write_noexec: tuple[str, ...] = ()
    #: single files that may be executed (runs without a shell: the program itself)
    exec_files: tuple[str, ...] = ()
    device_write: tuple[str, ...] = DEVICE_WRITABLE
    hidden: tuple[str, ...] = HIDDEN
    #: the database's directory, the secrets, the backups: never inside an allowed path
    protected: tuple[str, ...] = ()

    def with_paths(
        self, *, read_write: Iterable[str] = (), read_exec: Iterable[str] = ()
    ) -> SandboxPolicy:
        return replace(
            self,
            read_write=(*self.read_write, *map(_real, read_write)),
            read_exec=(*self.read_exec, *map(_real, read_exec)),
        )

    def allows_exec(self, path: str) -> bool:
        real = _real(path)
        return real in self.exec_files or any(
            under(real, root) for root in self.read_exec + self.read_write
        )

    def as_mapping(self) -> dict[str, list[str]]:
        return {
            "read_exec": list(self.read_exec),
            "read_only": list(self.read_only),
            "read_write": list(self.read_write),
            "read_write_noexec": list(self.read_write_noexec),
            "exec_files": list(self.exec_files),
            "device_write": list(self.device_write),
            "hidden": list(self.hidden),
            "protected": list(self.protected),
        }

    def check(self) -> None:
        """Refuse (:class:`SandboxError`) a policy that would expose a protected path."""
        check_policy(self.as_mapping())

    def to_json(self) -> str:
        return json.dumps(self.as_mapping(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SandboxPolicy:
        data = parse_policy(text)
        return cls(**{key: tuple(value) for key, value in data.items()})

    def rules(self) -> list[tuple[str, int, bool]]:
        """(path, rights, required) of every Landlock rule the policy makes here."""
        return rules(self.as_mapping())


@dataclass(frozen=True, slots=True)
class RunRights:
    """What the kernel lets one run do beyond reading the system: derived from the
    run's capability (:mod:`app.capability.model`), never decided here."""

    #: execute programs (a shell and what it starts); False: only the agent's program
    shell: bool = True
    #: change files in the workspace; False: the workspace is read-only
    write: bool = True
    #: programs a run without a shell may still execute (the profile's exec_allow)
    exec_allow: tuple[str, ...] = ()
    #: single files the run may read and nothing more: a subscription login's files
    #: (app/profiles/login.py), linked into its HOME; no write, truncate or delete
    read_files: tuple[str, ...] = ()


def run_policy(
    base: SandboxPolicy, *, program: str, cwd: str, tmpdir: str, rights: RunRights
) -> SandboxPolicy:
    """The worker's policy plus this run's workspace, TMPDIR and program, with the
    run's rights: without ``write`` the workspace is read-only; without ``shell``
    nothing may be executed but the program itself (its script interpreter and ELF
    loader included) and the profile's ``exec_allow``: the system directories and
    the writable ones lose their execute right. Refused (:class:`SandboxError`)
    when it would expose a protected path."""
    workspace, tmp, prog = _real(cwd), _real(tmpdir), _real(program)
    if rights.shell:
        if rights.write:
            policy = base.with_paths(read_write=[workspace, tmp])
        else:
            policy = replace(
                base.with_paths(read_write=[tmp]), read_only=(*base.read_only, workspace)
            )
        if not policy.allows_exec(prog):
            policy = policy.with_paths(read_exec=[str(Path(prog).parent)])
        policy = replace(policy, read_only=(*policy.read_only, *map(_real, rights.read_files)))
    else:
        executable = dict.fromkeys(
            [*exec_closure(prog), *(p for path in rights.exec_allow for p in exec_closure(path))]
        )
        read_only = [*base.read_only, *base.read_exec, *map(_real, rights.read_files)]
        if not rights.write:
            read_only.append(workspace)
        readable = [*read_only, workspace, tmp]
        for path in executable:
            if not any(under(path, root) for root in readable):
                read_only.append(str(Path(path).parent))
        policy = replace(
            base,
            read_exec=(),
            read_only=tuple(dict.fromkeys(read_only)),
            read_write=(),
            read_write_noexec=(workspace, tmp) if rights.write else (tmp,),
            exec_files=tuple(executable),
        )
    policy.check()
    return policy


def exec_closure(path: str) -> list[str]:
    """``path`` and what the kernel opens to execute it: the interpreter of a ``#!``
    script (recursively, at most 4 deep) and the ELF program interpreter (the
    dynamic loader). Real paths; unreadable files contribute themselves only."""
    found: list[str] = []
    current: str | None = _real(path)
    for _ in range(4):
        if current is None or current in found:
            break
        found.append(current)
        head = _read_head(current)
        if head.startswith(b"#!"):
            words = head[2:].split(b"\n", 1)[0].split()
            current = _real(words[0].decode("utf-8", "replace")) if words else None
            continue
        loader = _elf_interpreter(current, head)
        if loader is not None and loader not in found:
            found.append(loader)
        break
    return found


def _read_head(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(256)
    except OSError:
        return b""


def _elf_interpreter(path: str, head: bytes) -> str | None:
    """The PT_INTERP of an ELF file (the dynamic loader), or None."""
    import struct

    if len(head) < 64 or head[:4] != b"\x7fELF":
        return None
    is64, little = head[4] == 2, head[5] == 1
    order = "<" if little else ">"
    try:
        if is64:
            phoff, phentsize, phnum = (
                struct.unpack_from(order + "Q", head, 32)[0],
                *struct.unpack_from(order + "HH", head, 54),
            )
        else:
            phoff, phentsize, phnum = (
                struct.unpack_from(order + "I", head, 28)[0],
                *struct.unpack_from(order + "HH", head, 42),
            )
        with open(path, "rb") as handle:
            for index in range(min(phnum, 64)):
                handle.seek(phoff + index * phentsize)
                entry = handle.read(phentsize)
                if is64:
                    p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
                        order + "IIQQQQ", entry
                    )
                else:
                    p_type, p_offset, _, _, p_filesz = struct.unpack_from(order + "IIIII", entry)
                if p_type == 3 and 0 < p_filesz < 4096:  # PT_INTERP
                    handle.seek(p_offset)
                    name = handle.read(p_filesz).split(b"\x00", 1)[0]
                    return _real(name.decode("utf-8", "replace"))
    except (OSError, struct.error):
        return None
    return None


def _app_package_dir() -> str:
    return _real(Path(__file__).resolve().parent.parent)


def python_paths() -> tuple[str, ...]:
    """The running interpreter: its venv, its base installation, the real binary's
    directory (what the bundled demo agent and the exec wrapper need)."""
    paths = {
        _real(sys.prefix),
        _real(sys.base_prefix),
        _real(sys.exec_prefix),
        str(Path(_real(sys.executable)).parent),
    }
    return tuple(sorted(p for p in paths if p != "/"))


def default_policy(
    *,
    database_path: Path,
    state_dir: Path,
    secrets_dir: Path,
    backups_dir: Path,
) -> SandboxPolicy:
    """The worker's policy before a run adds its workspace, TMPDIR and program."""
    protected = tuple(
        dict.fromkeys(
            _real(p)
            for p in (database_path, database_path.parent, secrets_dir, backups_dir, state_dir)
        )
    )
    return SandboxPolicy(
        read_exec=(*SYSTEM_READ_EXEC, *python_paths()),
        read_only=(*SYSTEM_READ, _app_package_dir()),
        protected=protected,
    )


# --------------------------------------------------------------------------- apply


def apply_policy(policy: SandboxPolicy, abi: int | None = None) -> int:
    """Confine the calling process to ``policy`` (irreversible; see
    :func:`app.runner.sandbox_exec.restrict_self`). Returns the ABI used."""
    return restrict_self(policy.as_mapping(), abi)


def wrapper_argv(policy: SandboxPolicy, argv: Sequence[str]) -> list[str]:
    """``argv`` run through the exec wrapper with the worker's own interpreter."""
    wrapper = str(Path(__file__).resolve().with_name("sandbox_exec.py"))
    return [
        sys.executable,
        "-I",
        "-S",
        wrapper,
        policy.to_json(),
        "--",
        *argv,
    ]


# --------------------------------------------------------------------------- probe

#: what the probe child tries; True: must succeed, False: must be denied
EXPECTED = {
    "read_database": False,
    "read_state_canary": False,
    "read_secrets": False,
    "list_state_dir": False,
    "write_etc": False,
    "write_usr": False,
    "write_tmp": False,
    "write_workspace": True,
    "write_tmpdir": True,
    "exec_system_program": True,
    "unix_socket": False,
}

_PROBE_CODE = r"""
import json, os, subprocess, sys
paths = json.loads(sys.argv[1])
results = {}
def attempt(name, action):
    try:
        action()
        results[name] = "allowed"
    except OSError as exc:
        results[name] = "denied:" + (errno_name(exc.errno))
def errno_name(number):
    import errno
    return errno.errorcode.get(number, str(number))
def read(path):
    with open(path, "rb") as handle:
        handle.read(1)
def write(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.unlink(path)
for name, path in paths["read"].items():
    attempt(name, lambda path=path: read(path))
attempt("list_state_dir", lambda: os.listdir(paths["state_dir"]))
paths["write"]["write_tmpdir"] = os.path.join(os.environ["TMPDIR"], "probe")
for name, path in paths["write"].items():
    attempt(name, lambda path=path: write(path))
def run_true():
    if subprocess.run(["/bin/sh", "-c", "exit 0"], check=False).returncode != 0:
        raise OSError(0, "failed")
attempt("exec_system_program", run_true)
def unix_socket():
    import socket
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()
attempt("unix_socket", unix_socket)
print(json.dumps(results))
"""


@dataclass(frozen=True, slots=True)
class SandboxReport:
    """The state of the agents' filesystem sandbox, as the worker found it at start.

    ``status``: ``enforced`` (Landlock applied, every probe check as expected),
    ``incomplete`` (applied, but a check failed: a policy bug), ``unconfined``
    (``auto`` without Landlock: runs go on with the other controls), ``refused``
    (``required`` and not enforced: no agent runs), ``off`` (explicit opt-out).
    """

    mode: str
    status: str
    abi: int
    reason: str
    checks: dict[str, str]
    probe_ms: float = 0.0

    @property
    def enforced(self) -> bool:
        return self.status == "enforced"

    @property
    def runs_allowed(self) -> bool:
        return self.status != "refused"

    @property
    def confines_runs(self) -> bool:
        """Runs are started through the sandbox (applied, possibly incomplete)."""
        return self.status in ("enforced", "incomplete")

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "status": self.status,
            "enforced": self.enforced,
            "landlock_abi": self.abi,
            "reason": self.reason,
            "checks": dict(self.checks),
            "probe_ms": round(self.probe_ms, 1),
        }


def _outcome(
    mode: str, ok: bool, abi: int, reason: str, checks: dict[str, str], ms: float
) -> SandboxReport:
    if ok:
        return SandboxReport(mode, "enforced", abi, reason, checks, ms)
    if mode == "required":
        return SandboxReport(mode, "refused", abi, reason, checks, ms)
    if abi > 0 and checks:
        return SandboxReport(mode, "incomplete", abi, reason, checks, ms)
    return SandboxReport(mode, "unconfined", abi, reason, checks, ms)


async def probe(
    *,
    mode: str,
    database_path: Path,
    state_dir: Path,
    secrets_dir: Path,
    backups_dir: Path,
    status: LandlockStatus | None = None,
) -> tuple[SandboxReport, SandboxPolicy | None]:
    """Find out whether agent runs are really confined here: spawn a child through
    the same path as a run (``run_confined`` with the policy) that tries to read the
    database, a canary file beside it and the secrets, to write ``/etc``, ``/usr``
    and ``/tmp`` (all must be denied), and to write its workspace and TMPDIR and run
    a system program (all must work). Returns the report and the policy to use for
    runs (None: runs are not sandboxed)."""
    import time

    from app.profiles.profiles import Limits
    from app.runner.process import run_confined

    if mode == "off":
        return SandboxReport(
            mode, "off", 0, "disabled by MC_RUNNER_SANDBOX=off: agents can read the database", {}
        ), None
    status = status if status is not None else landlock_status()
    if status.abi < 1:
        return _outcome(mode, False, 0, status.reason, {}, 0.0), None
    policy = default_policy(
        database_path=database_path,
        state_dir=state_dir,
        secrets_dir=secrets_dir,
        backups_dir=backups_dir,
    )
    started = time.perf_counter()
    try:
        base, canary, paths = await asyncio.to_thread(
            _prepare_probe, database_path, state_dir, secrets_dir
        )
    except OSError as exc:
        reason = f"the probe could not be prepared: {exc}"
        return _outcome(mode, False, status.abi, reason, {}, 0.0), None
    try:
        run = await run_confined(
            [sys.executable, "-I", "-S", "-c", _PROBE_CODE, json.dumps(paths)],
            stdin_data=b"",
            env={},
            cwd=base / "workspace",
            limits=Limits(
                cpu_seconds=30, address_space_mb=1024, open_files=64, wall_clock_seconds=30
            ),
            sandbox=policy,
            tmp_root=base,
        )
    finally:
        await asyncio.to_thread(_clean_probe, base, canary)
    ms = (time.perf_counter() - started) * 1000
    if not run.started or run.exit_code != 0:
        reason = f"the probe did not run under the sandbox: {run.reason}"
        return _outcome(mode, False, status.abi, reason, {}, ms), None
    try:
        checks = {str(k): str(v) for k, v in json.loads(run.stdout.decode()).items()}
    except (ValueError, AttributeError):
        return _outcome(mode, False, status.abi, "the probe's answer was unreadable", {}, ms), None
    wrong = sorted(
        name
        for name, allowed in EXPECTED.items()
        if (name in checks and (checks[name] == "allowed") != allowed)
        or (name not in checks and name != "read_secrets")  # no secret file: nothing to try
    )
    if wrong:
        reason = f"Landlock ABI {status.abi} applied, but these checks failed: {', '.join(wrong)}"
        report = _outcome(mode, False, status.abi, reason, checks, ms)
    else:
        reason = (
            f"Landlock ABI {status.abi}: agents cannot read the database or the secrets,"
            " cannot write outside their workspace and TMPDIR, cannot open a unix socket"
        )
        report = _outcome(mode, True, status.abi, reason, checks, ms)
    return report, (policy if report.confines_runs else None)


def _prepare_probe(
    database_path: Path, state_dir: Path, secrets_dir: Path
) -> tuple[Path, Path, dict[str, object]]:
    """A private directory in the state directory (the probe's workspace and TMPDIR
    root), a canary file beside the database, and what the child tries."""
    import tempfile

    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    base = Path(tempfile.mkdtemp(prefix=".sandbox-probe-", dir=state_dir))
    canary = database_path.parent / f".sandbox-probe-{os.getpid()}"
    try:
        workspace = base / "workspace"
        workspace.mkdir(mode=0o700)
        fd = os.open(canary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        os.write(fd, b"canary\n")
        os.close(fd)
    except OSError:
        _clean_probe(base, canary)
        raise
    read = {"read_state_canary": str(canary)}
    read["read_database"] = str(database_path) if database_path.exists() else str(canary)
    secret = _first_file(secrets_dir)
    if secret is not None:
        read["read_secrets"] = secret
    suffix = f".mc-sandbox-probe-{os.getpid()}"
    paths: dict[str, object] = {
        "read": read,
        "state_dir": str(state_dir),
        "write": {
            "write_etc": f"/etc/{suffix}",
            "write_usr": f"/usr/{suffix}",
            "write_tmp": f"/tmp/{suffix}",  # noqa: S108 - must be denied
            "write_workspace": str(workspace / suffix),
        },
    }
    return base, canary, paths


def _clean_probe(base: Path, canary: Path) -> None:
    import shutil

    with contextlib.suppress(OSError):
        canary.unlink()
    shutil.rmtree(base, ignore_errors=True)


def _first_file(directory: Path) -> str | None:
    try:
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            if entry.is_file(follow_symlinks=False):
                return entry.path
    except OSError:
        return None
    return None
