"""Landlock primitives, and the exec wrapper that confines itself then becomes the agent.

``python -I -S .../app/runner/sandbox_exec.py POLICY_JSON -- PROGRAM ARGS...``
(``python -I -m app.runner.sandbox_exec`` works too). The policy and what it
allows are described in :mod:`app.runner.sandbox`, which builds it.

Why a wrapper process and not ``preexec_fn``: the sandbox has to be applied in
the child between fork and exec. ``preexec_fn`` would run Python code (ctypes,
``open``, ``listdir``) in a child forked from the worker, which has threads
(aiosqlite, the child watcher, the default executor): CPython documents that as
unsafe (a lock held at fork time by another thread deadlocks the child), and it
disables the vfork fast path. The wrapper is a fresh, single-threaded interpreter:
it builds the ruleset, sets ``no_new_privs``, calls ``landlock_restrict_self`` and
``execv``'s the agent in the same process, so the agent never runs unconfined, and
the restriction is inherited by everything it starts. This is the same pattern as
the resource limits (``prlimit ... -- agent``, see ``process.py``).

It costs one interpreter start-up. To keep that small this module imports only
``os``, ``sys``, ``ctypes``, ``json``, ``stat`` and ``errno`` and is run as a file
with ``-S`` (no ``site``): about 20 ms instead of 40 ms with ``-m`` and the full
policy module (docs/runner-confinement.md).

If anything fails, the agent is **not** executed: the wrapper writes
``mc-sandbox: <reason>`` to stderr and exits with status 125, and the runner
reports a run that could not start. The policy is on the command line (visible in
``/proc/<pid>/cmdline``): it holds paths only, never a secret.

The system calls are 444/445/446 on every architecture that uses the generic
syscall table (x86-64 and aarch64 included).
"""

# os.path, not pathlib: this module is imported by every sandboxed run's wrapper
# and must start fast (pathlib alone costs several milliseconds to import).
# ruff: noqa: PTH112, PTH114, PTH118, PTH208

from __future__ import annotations

import ctypes
import errno
import json
import os
import stat
import sys

_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
_LANDLOCK_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# filesystem access rights (include/uapi/linux/landlock.h)
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

# seccomp: no unix-domain socket may be created (docs/runner-confinement.md)
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000
_AF_UNIX = 1
_X32_SYSCALL_BIT = 0x40000000
#: machine -> (AUDIT_ARCH_*, __NR_socket, __NR_io_uring_setup)
SECCOMP_ARCHES = {
    "x86_64": (0xC000003E, 41, 425),
    "aarch64": (0xC00000B7, 198, 425),
}

_ABI1_RIGHTS = (1 << 13) - 1
#: rights that may be granted on a file (not a directory)
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV

READ = FS_READ_FILE | FS_READ_DIR
READ_EXEC = READ | FS_EXECUTE
DEVICE_WRITE = FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE | FS_IOCTL_DEV
#: everything: workspace and TMPDIR (agents build and run code there)
ALL_FS = (1 << 16) - 1

#: exit status of the exec wrapper when the sandbox could not be applied
SANDBOX_FAILED_EXIT = 125
SANDBOX_FAILED_MARKER = b"mc-sandbox: "

_POLICY_KEYS = (
    "read_exec",
    "read_only",
    "read_write",
    "read_write_noexec",
    "exec_files",
    "device_write",
    "hidden",
    "protected",
)


class SandboxError(RuntimeError):
    """The sandbox cannot be built or applied; the agent must not run."""


# --------------------------------------------------------------------------- kernel


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _syscall(libc: ctypes.CDLL, number: int, *args: object) -> int:
    result: int = libc.syscall(ctypes.c_long(number), *args)
    return result


def kernel_abi() -> tuple[int, int]:
    """(Landlock ABI version, errno): ``landlock_create_ruleset(NULL, 0,
    LANDLOCK_CREATE_RULESET_VERSION)``; the version is 0 when unavailable."""
    if not sys.platform.startswith("linux"):
        return 0, errno.ENOSYS
    libc = _libc()
    abi = _syscall(
        libc,
        _SYS_LANDLOCK_CREATE_RULESET,
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
    )
    return (abi, 0) if abi >= 1 else (0, ctypes.get_errno())


def handled_fs_rights(abi: int) -> int:
    """Every filesystem right this ABI knows (all of them are handled)."""
    if abi < 1:
        return 0
    rights = _ABI1_RIGHTS
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def scoped_rights(abi: int) -> int:
    return SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0


# --------------------------------------------------------------------------- policy


def real(path: str) -> str:
    return os.path.realpath(path)


def under(path: str, root: str) -> bool:
    """``path`` is ``root`` or inside it (both real, absolute)."""
    return path == root or root == "/" or path.startswith(root.rstrip("/") + "/")


def check_policy(policy: dict[str, list[str]]) -> None:
    """Refuse a policy that would expose a protected path (the database's directory,
    the secrets...) or whose writable directories are missing."""
    hidden = [real(h) for h in policy["hidden"]]
    for key in (
        "read_exec",
        "read_only",
        "read_write",
        "read_write_noexec",
        "exec_files",
        "device_write",
    ):
        for root in policy[key]:
            real_root = real(root)
            for protected in policy["protected"]:
                path = real(protected)
                if under(path, real_root) and not any(
                    under(path, h) and under(h, real_root) for h in hidden
                ):
                    raise SandboxError(
                        f"the sandbox would expose {protected}: it is inside the allowed {root}"
                    )
    for root in [*policy["read_write"], *policy["read_write_noexec"]]:
        if not os.path.isdir(root):
            raise SandboxError(f"the writable directory {root} does not exist")


def parse_policy(text: str) -> dict[str, list[str]]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise SandboxError("the sandbox policy is not an object")
    policy: dict[str, list[str]] = {}
    for key in _POLICY_KEYS:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SandboxError(f"the sandbox policy's {key} is not a list of paths")
        policy[key] = value
    return policy


def expand(root: str, hidden: list[str]) -> list[str]:
    """``root`` itself, or, when a hidden path lies inside it, its entries one by one
    (recursively) without the hidden ones: Landlock has no deny rule."""
    inside = [h for h in hidden if under(h, root)]
    if not inside:
        return [root]
    if root in inside:
        return []
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    result: list[str] = []
    for name in names:
        child = os.path.join(root, name)
        if os.path.isdir(child) and not os.path.islink(child):
            result.extend(expand(child, inside))
        elif child not in inside:
            result.append(child)
    return result


def rules(policy: dict[str, list[str]]) -> list[tuple[str, int, bool]]:
    """(path, rights, required) for every rule of the policy."""
    hidden = [real(h) for h in policy["hidden"]] + list(policy["hidden"])
    result: list[tuple[str, int, bool]] = []
    for key, rights, required in (
        ("read_exec", READ_EXEC, False),
        ("read_only", READ, False),
        ("device_write", DEVICE_WRITE, False),
        ("read_write", ALL_FS, True),
        ("read_write_noexec", ALL_FS & ~FS_EXECUTE, True),
        # single programs a run without a shell may execute (read + execute)
        ("exec_files", READ_EXEC, False),
    ):
        for root in policy[key]:
            if required:
                result.append((root, rights, True))
                continue
            for path in expand(root, hidden):
                result.append((path, rights, False))
    return result


# --------------------------------------------------------------------------- seccomp


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def unix_socket_filter(machine: str) -> list[tuple[int, int, int, int]]:
    """The classic-BPF program (code, jt, jf, k) that refuses ``socket(AF_UNIX, ...)``
    with ``EACCES``: Landlock does not mediate ``connect()`` to a *path* socket (ABI 6
    scopes abstract ones only), so this is what keeps a run away from the API's socket
    (``/run/mission-control``), the worker's notify socket and every other local
    service. ``socketpair()`` (pipes between a program and its children) stays
    allowed. ``io_uring_setup`` (which can create sockets past the filter) answers
    ``ENOSYS``; system calls of another architecture (32-bit compat, x32) ``EPERM``.
    Raises :class:`SandboxError` on an architecture it does not know (fail closed)."""
    try:
        arch, nr_socket, nr_io_uring = SECCOMP_ARCHES[machine]
    except KeyError:
        raise SandboxError(f"no unix-socket filter for the {machine} architecture") from None
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, JMP|JGE|K, RET|K
    return [
        (ld, 0, 0, 4),  # 0: seccomp_data.arch
        (jeq, 0, 9, arch),  # 1: foreign architecture -> 11
        (ld, 0, 0, 0),  # 2: seccomp_data.nr
        (jge, 7, 0, _X32_SYSCALL_BIT),  # 3: x32 -> 11
        (jeq, 5, 0, nr_io_uring),  # 4: io_uring_setup -> 10
        (jeq, 0, 2, nr_socket),  # 5: not socket -> 8
        (ld, 0, 0, 16),  # 6: low 32 bits of args[0] (the domain; little-endian)
        (jeq, 1, 0, _AF_UNIX),  # 7: AF_UNIX -> 9
        (ret, 0, 0, _SECCOMP_RET_ALLOW),  # 8
        (ret, 0, 0, _SECCOMP_RET_ERRNO | errno.EACCES),  # 9
        (ret, 0, 0, _SECCOMP_RET_ERRNO | errno.ENOSYS),  # 10
        (ret, 0, 0, _SECCOMP_RET_ERRNO | errno.EPERM),  # 11
    ]


def deny_unix_sockets(libc: ctypes.CDLL) -> None:
    """Install :func:`unix_socket_filter` on the calling thread (inherited by every
    child; needs ``no_new_privs``)."""
    program = unix_socket_filter(os.uname().machine)
    array = (_SockFilter * len(program))(*(_SockFilter(*insn) for insn in program))
    fprog = _SockFprog(len(program), array)
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise SandboxError(f"prctl(SECCOMP) failed: {os.strerror(ctypes.get_errno())}")


# --------------------------------------------------------------------------- apply


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def restrict_self(policy: dict[str, list[str]], abi: int | None = None) -> int:
    """Confine the *calling process* (and every process it execs or forks) to
    ``policy``; irreversible. Returns the ABI used. Raises :class:`SandboxError`
    before restricting anything when the policy is unsafe or a writable directory is
    missing, and when the kernel refuses."""
    check_policy(policy)
    if abi is None:
        abi = kernel_abi()[0]
    if abi < 1:
        raise SandboxError("Landlock is not available in this kernel")
    handled = handled_fs_rights(abi)
    libc = _libc()
    attr = _RulesetAttr(handled, 0, scoped_rights(abi))
    size = ctypes.sizeof(ctypes.c_uint64) * (3 if abi >= 6 else 2 if abi >= 4 else 1)
    ruleset = _syscall(
        libc,
        _SYS_LANDLOCK_CREATE_RULESET,
        ctypes.byref(attr),
        ctypes.c_size_t(size),
        ctypes.c_uint32(0),
    )
    if ruleset < 0:
        raise SandboxError(f"landlock_create_ruleset failed: {os.strerror(ctypes.get_errno())}")
    try:
        for path, rights, required in rules(policy):
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError as exc:
                if required:
                    raise SandboxError(f"cannot open {path}: {exc.strerror}") from None
                continue
            try:
                allowed = rights & handled
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    allowed &= _FILE_RIGHTS
                beneath = _PathBeneathAttr(allowed, fd)
                added = _syscall(
                    libc,
                    _SYS_LANDLOCK_ADD_RULE,
                    ctypes.c_int(ruleset),
                    ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
                    ctypes.byref(beneath),
                    ctypes.c_uint32(0),
                )
                if added != 0:
                    err = ctypes.get_errno()
                    raise SandboxError(f"landlock_add_rule({path}) failed: {os.strerror(err)}")
            finally:
                os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise SandboxError(f"prctl(NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}")
        deny_unix_sockets(libc)
        restricted = _syscall(
            libc, _SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)
        )
        if restricted != 0:
            err = ctypes.get_errno()
            raise SandboxError(f"landlock_restrict_self failed: {os.strerror(err)}")
    finally:
        os.close(ruleset)
    return abi


# --------------------------------------------------------------------------- wrapper


def _fail(reason: str) -> int:
    os.write(2, SANDBOX_FAILED_MARKER + reason.encode("utf-8", "replace") + b"\n")
    return SANDBOX_FAILED_EXIT


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        return _fail("usage: sandbox_exec POLICY_JSON -- PROGRAM [ARGS...]")
    try:
        restrict_self(parse_policy(argv[0]))
    except (SandboxError, ValueError, OSError) as exc:
        return _fail(f"the sandbox could not be applied: {exc}")
    program = argv[2]
    try:
        os.execv(program, argv[2:])  # noqa: S606 - an argv list, no shell
    except OSError as exc:
        return _fail(f"could not execute {program!r}: {exc.strerror or exc}")
    return SANDBOX_FAILED_EXIT  # pragma: no cover - execv does not return


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
