"""Command profiles: which program an agent runs is host configuration (F27).

A profile file is TOML, root-owned on the Pi (``/etc/mission-control/profiles.toml``)::

    [profiles.claude]
    runtime = "claude-code"          # the dialect: flags from the capability, stream-json
    commands = "per-agent"           # never | per-agent | always (docs/capability.md)
    argv = ["claude", "--model", "{model}"]
    env_allow = ["ANTHROPIC_API_KEY"]
    credential_file = "/etc/mission-control/credentials/anthropic.env"

    [profiles.claude.limits]
    wall_clock_seconds = 900

Nothing here is ever read from the API or the database: an agent only *names* a
profile. ``argv`` is a list (never a shell string); placeholders are substituted
per element with :func:`render_argv`, by plain text replacement (no ``str.format``,
no attribute access, no format specs), and an unknown placeholder is refused when
the file is loaded, not when a run starts.

What the program may do is not in ``argv``: a profile that would switch the
program's permission checks off (``--dangerously-skip-permissions`` and the like)
is refused, and for the ``claude-code`` runtime the tool, permission, output and
budget flags are set per run from the agent's capability
(:mod:`app.runner.claude_code`), so the profile may not set them itself.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.capability.model import CommandsPolicy, ProfileTraits
from app.profiles.runtime_options import LOGIN_FILES, check_options

DEFAULT_PROFILES_PATH = Path("/etc/mission-control/profiles.toml")
EXAMPLE_PROFILES_PATH = Path(__file__).with_name("profiles.example.toml")

MAX_PROFILE_FILE_BYTES = 256 * 1024

#: Placeholders a profile may use, and nothing else.
#: ``python`` is the worker's own interpreter (``sys.executable``).
PLACEHOLDERS: frozenset[str] = frozenset({"workspace", "model", "max_turns", "python"})

# Any brace at all is either part of exactly ``{name}`` or an error.
_PLACEHOLDER_RE = re.compile(r"\{([a-z_]+)\}")
_PROFILE_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@\[\]-]{0,127}$")

# argv[0] may not be a shell (that is a shell string in disguise) nor a program
# that rewrites the environment or the limits before exec'ing something else.
_FORBIDDEN_PROGRAMS = frozenset(
    {"sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh", "busybox"}
    | {"env", "sudo", "su", "doas", "prlimit", "nohup", "setsid", "xargs"}
)
_SHELL_META = frozenset(" \t\n;|&$`<>()*?!~'\"\\")

# Loader and interpreter hooks: a value in one of these is code execution in the
# child, and the runner sets PATH/HOME/LANG/TMPDIR itself.
_FORBIDDEN_ENV_NAMES = frozenset(
    {"PATH", "BASH_ENV", "ENV", "PYTHONSTARTUP", "PYTHONPATH", "PYTHONHOME", "PYTHONINSPECT"}
    | {"NODE_OPTIONS", "NODE_PATH", "PERL5OPT", "PERL5LIB", "RUBYOPT", "GCONV_PATH", "IFS"}
)
_FORBIDDEN_ENV_PREFIXES = ("LD_", "DYLD_", "MC_")

Runtime = Literal["claude-code", "codex", "gemini", "generic", "opencode"]

#: switches that turn an agent CLI's own permission checks off: never in a profile
_PERMISSION_BYPASS = (
    "--dangerously-skip-permissions",
    "--allow-dangerously-skip-permissions",
    "--dangerously-bypass-approvals-and-sandbox",
    "--yolo",
    "bypassPermissions",
)
#: flags the claude-code runtime derives from the capability, the budget and the
#: run; a profile of that runtime may not set them (app/runner/claude_code.py)
RUNTIME_OWNED_FLAGS: dict[str, tuple[str, ...]] = {
    "claude-code": (
        "-p",
        "--print",
        "--output-format",
        "--input-format",
        "--verbose",
        "--include-partial-messages",
        "--tools",
        "--allowedTools",
        "--allowed-tools",
        "--disallowedTools",
        "--disallowed-tools",
        "--permission-mode",
        "--permission-prompts",
        "--permission-prompt-tool",
        "--max-turns",
        "--max-budget-usd",
        "--settings",
        "--setting-sources",
        "--mcp-config",
        "--strict-mcp-config",
        "--add-dir",
        "--restricted",
        "--agents",
        "--plugin-dir",
        "--plugin-url",
        "--resume",
        "-r",
        "--continue",
        "-c",
        "--session-id",
    ),
    # app/runner/codex.py: the subcommand, output, sandbox, approval, model,
    # provider and feature settings come from the run, never from the profile
    "codex": (
        "exec",
        "e",
        "resume",
        "fork",
        "review",
        "--json",
        "--experimental-json",
        "--skip-git-repo-check",
        "--color",
        "-s",
        "--sandbox",
        "-a",
        "--ask-for-approval",
        "--full-auto",
        "--approve-for-me",
        "-c",
        "--config",
        "--enable",
        "--disable",
        "-m",
        "--model",
        "-p",
        "--profile",
        "--oss",
        "--local-provider",
        "-C",
        "--cd",
        "--add-dir",
        "--worktree",
        "--trust",
        "--ephemeral",
        "--ignore-user-config",
        "--ignore-rules",
        "--strict-config",
        "--output-schema",
        "-o",
        "--output-last-message",
        "--dangerously-bypass-hook-trust",
        "--remote",
    ),
    # app/runner/gemini.py: the headless prompt, output, approval, trust, policy,
    # tool and session settings come from the run, never from the profile
    "gemini": (
        "-p",
        "--prompt",
        "-i",
        "--prompt-interactive",
        "-o",
        "--output-format",
        "-y",
        "--yolo",
        "--approval-mode",
        "--skip-trust",
        "--policy",
        "--admin-policy",
        "--allowed-tools",
        "--allowed-mcp-server-names",
        "-e",
        "--extensions",
        "-l",
        "--list-extensions",
        "-r",
        "--resume",
        "--session-file",
        "--session-id",
        "--list-sessions",
        "--delete-session",
        "--include-directories",
        "-s",
        "--sandbox",
        "-w",
        "--worktree",
        "--acp",
        "--experimental-acp",
        "--raw-output",
        "--accept-raw-output-risk",
        "-d",
        "--debug",
        "mcp",
        "extensions",
        "extension",
        "skills",
        "skill",
        "hooks",
        "hook",
        "gemma",
    ),
    # app/runner/opencode.py: the subcommand, output, agent (its permissions) and
    # model come from the run; a session may not be continued, shared or attached
    "opencode": (
        "run",
        "serve",
        "--format",
        "--agent",
        "-m",
        "--model",
        "-c",
        "--continue",
        "-s",
        "--session",
        "--fork",
        "--share",
        "--attach",
        "--auto",
        "--dir",
        "--port",
        "--command",
        "-f",
        "--file",
        "-p",
        "--password",
        "-u",
        "--username",
        "-i",
        "--interactive",
    ),
    "generic": (),
}


class ProfileError(Exception):
    """A profile file or a profile use is invalid; the message says why (never a secret)."""


class Limits(BaseModel):
    """Resource bounds of one agent run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_seconds: Annotated[int, Field(ge=1, le=24 * 3600)] = 600
    #: RLIMIT_AS. Node/V8 reserves large virtual ranges: give the Claude CLI a wide
    #: value; resident memory is bounded by MemoryMax= of the systemd scope on the Pi.
    address_space_mb: Annotated[int, Field(ge=64, le=1024 * 1024)] = 2048
    open_files: Annotated[int, Field(ge=16, le=65_536)] = 1024
    #: RLIMIT_NPROC: per *user*, and not enforced for root (see docs/runner-confinement.md).
    processes: Annotated[int, Field(ge=1, le=65_536)] = 256
    wall_clock_seconds: Annotated[float, Field(gt=0, le=24 * 3600)] = 900
    stdout_cap_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 5_000_000
    stderr_cap_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 256 * 1024
    #: SIGTERM to the group, then this long before SIGKILL.
    term_grace_seconds: Annotated[float, Field(ge=0, le=60)] = 3.0


class Profile(BaseModel):
    """One named way of running an agent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    argv: Annotated[list[str], Field(min_length=1, max_length=64, strict=True)]
    env_allow: Annotated[list[str], Field(max_length=64, strict=True)] = Field(default_factory=list)
    credential_file: Path | None = None
    #: how the runner talks to the program: ``claude-code`` builds the tool and
    #: permission flags from the capability and reads stream-json live;
    #: ``generic`` passes argv as written and reads the final result object
    runtime: Runtime = "generic"
    #: whether the program can run commands at all (docs/capability.md); default:
    #: ``per-agent`` for claude-code, ``always`` for generic (fail closed)
    commands: CommandsPolicy | None = None
    #: programs a run *without* a shell may still execute besides argv[0] (absolute)
    exec_allow: Annotated[list[str], Field(max_length=32, strict=True)] = Field(
        default_factory=list
    )
    #: the price table entry used for a model the table does not list
    price_fallback: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    #: runtime-specific settings (a CLI's provider, endpoint, ...): checked against
    #: ``runtime_options.RUNTIME_OPTIONS`` when the file is loaded
    options: dict[str, Any] = Field(default_factory=dict)
    #: a root-owned directory holding the CLI's subscription login (its files at
    #: the paths of ``runtime_options.LOGIN_FILES``), seen read-only by the run
    #: instead of an API key (app/profiles/login.py)
    login_dir: Path | None = None
    #: the only output format (the final result object; stream-json lines before it)
    output_format: Literal["claude-json"] = "claude-json"
    limits: Limits = Field(default_factory=Limits)

    @field_validator("argv")
    @classmethod
    def _check_argv(cls, argv: list[str]) -> list[str]:
        for index, element in enumerate(argv):
            if len(element) > 4096:
                raise ValueError(f"argv[{index}] is longer than 4096 characters")
            if "\x00" in element or "\n" in element or "\r" in element:
                raise ValueError(f"argv[{index}] contains a NUL or newline")
            used = _placeholders_in(element, index)
            if index == 0 and used and element != "{python}":
                raise ValueError(
                    "argv[0] must be a literal program path or exactly '{python}': "
                    "what runs may not depend on per-run values"
                )
        program = argv[0]
        if program == "":
            raise ValueError("argv[0] is empty")
        if program != "{python}":
            if any(ch in _SHELL_META for ch in program):
                raise ValueError(
                    "argv[0] contains whitespace or shell syntax: argv is a list of "
                    "arguments, never a shell command line"
                )
            if PurePath(program).name in _FORBIDDEN_PROGRAMS:
                raise ValueError(
                    f"argv[0] may not be {PurePath(program).name!r}: shells and "
                    "exec wrappers would bypass the argv list and the clean environment"
                )
        return argv

    @field_validator("exec_allow")
    @classmethod
    def _check_exec_allow(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not path.startswith("/") or "\x00" in path or "\n" in path:
                raise ValueError(f"exec_allow: {path[:80]!r} must be an absolute path")
        return paths

    @model_validator(mode="after")
    def _check_options(self) -> Profile:
        check_options(self.runtime, self.options)
        if self.login_dir is not None:
            if not self.login_dir.is_absolute():
                raise ValueError(
                    "login_dir must be an absolute path (/etc/mission-control/logins/<name>)"
                )
            if self.runtime not in LOGIN_FILES:
                runtimes = ", ".join(sorted(LOGIN_FILES))
                raise ValueError(
                    f"login_dir: the {self.runtime} runtime has no subscription login"
                    f" (runtimes with one: {runtimes}); remove login_dir or change the runtime"
                )
        return self

    @model_validator(mode="after")
    def _check_flags(self) -> Profile:
        owned = RUNTIME_OWNED_FLAGS[self.runtime]
        for index, element in enumerate(self.argv):
            flag = element.split("=", 1)[0]
            if any(bypass in element for bypass in _PERMISSION_BYPASS):
                raise ValueError(
                    f"argv[{index}] {element[:60]!r} switches the program's permission checks off;"
                    " what an agent may do comes from its capability, never from the profile"
                )
            if flag in owned:
                raise ValueError(
                    f"argv[{index}] {flag!r} is set by the {self.runtime} runtime from the"
                    " agent's capability and the run's budget; remove it from the profile"
                )
        return self

    @property
    def commands_policy(self) -> CommandsPolicy:
        if self.commands is not None:
            return self.commands
        return "always" if self.runtime == "generic" else "per-agent"

    def traits(self, name: str) -> ProfileTraits:
        """What this profile's program can do at all, for the capability."""
        return ProfileTraits(name=name, runtime=self.runtime, commands=self.commands_policy)

    @field_validator("env_allow")
    @classmethod
    def _check_env_allow(cls, names: list[str]) -> list[str]:
        for name in names:
            if not _ENV_NAME_RE.match(name):
                raise ValueError(f"env_allow: {name!r} is not a valid variable name")
            if name.upper() in _FORBIDDEN_ENV_NAMES or name.upper().startswith(
                _FORBIDDEN_ENV_PREFIXES
            ):
                raise ValueError(f"env_allow: {name!r} may not be passed to an agent")
        if len(set(names)) != len(names):
            raise ValueError("env_allow: duplicate names")
        return names

    @field_validator("credential_file")
    @classmethod
    def _check_credential_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_absolute():
            raise ValueError("credential_file must be an absolute path")
        return path

    @property
    def placeholders(self) -> frozenset[str]:
        """The placeholders this profile's argv uses."""
        found: set[str] = set()
        for index, element in enumerate(self.argv):
            found |= _placeholders_in(element, index)
        return frozenset(found)


class ProfilesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    profiles: dict[str, Profile] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_names(self) -> ProfilesFile:
        for name in self.profiles:
            if not _PROFILE_NAME_RE.match(name):
                raise ValueError(f"profile name {name!r} must match {_PROFILE_NAME_RE.pattern}")
        return self


def _placeholders_in(element: str, index: int) -> set[str]:
    """Names used in one argv element; any other use of braces is an error."""
    found: set[str] = set()
    position = 0
    for match in _PLACEHOLDER_RE.finditer(element):
        between = element[position : match.start()]
        if "{" in between or "}" in between:
            raise ValueError(f"argv[{index}]: stray brace (only {{name}} placeholders exist)")
        name = match.group(1)
        if name not in PLACEHOLDERS:
            raise ValueError(
                f"argv[{index}]: unknown placeholder {{{name}}} "
                f"(known: {', '.join(sorted(PLACEHOLDERS))})"
            )
        found.add(name)
        position = match.end()
    rest = element[position:]
    if "{" in rest or "}" in rest:
        raise ValueError(f"argv[{index}]: stray brace (only {{name}} placeholders exist)")
    return found


# --------------------------------------------------------------------------- files

_ETC = Path("/etc")


def under_etc(path: Path) -> bool:
    """True when ``path`` is in ``/etc``, literally or once symlinks are resolved:
    the one rule for "a host file here must be root-owned" (profiles, their
    credential files, the price table)."""
    literal = Path(os.path.abspath(path))  # noqa: PTH100 - normalise '..' without resolving
    candidates = [literal]
    with contextlib.suppress(OSError):
        candidates.append(path.resolve())
    return any(candidate == _ETC or _ETC in candidate.parents for candidate in candidates)


def read_host_file(
    path: Path,
    *,
    what: str,
    require_root_owned: bool,
    forbidden_mode_bits: int,
    max_bytes: int,
    allowed_owners: frozenset[int] = frozenset({0}),
    error: type[Exception] = ProfileError,
) -> bytes:
    """Read a small host configuration file after checking who can change or read it.

    The file is opened with ``O_NOFOLLOW`` and checked with ``fstat`` on the open
    descriptor, so what is checked is what is read. Refused: symlinks, non-regular
    files, any of ``forbidden_mode_bits`` set, a group/world-writable parent
    directory, and (``require_root_owned``) an owner outside ``allowed_owners`` for
    the file or its directory.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except PermissionError:
        raise error(f"{what} {path} is not readable by this process") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{what} {path} is a symlink; refusing it") from None
        code = errno.errorcode.get(exc.errno or 0, "?")
        raise error(f"{what} {path} cannot be opened ({code})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what} {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & forbidden_mode_bits:
            raise error(
                f"{what} {path} has mode {mode:04o}; it must not be "
                f"{_describe_bits(mode & forbidden_mode_bits)} (chmod it)"
            )
        if require_root_owned and info.st_uid not in allowed_owners:
            raise error(
                f"{what} {path} is owned by uid {info.st_uid}; it must be owned by root "
                "(chown root:root it)"
            )
        _check_parent(
            path,
            what=what,
            require_root_owned=require_root_owned,
            allowed_owners=allowed_owners,
            error=error,
        )
        if info.st_size > max_bytes:
            raise error(f"{what} {path} is larger than {max_bytes} bytes")
        with os.fdopen(fd, "rb", closefd=True) as handle:
            fd = -1
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise error(f"{what} {path} is larger than {max_bytes} bytes")
        return data
    finally:
        if fd >= 0:
            os.close(fd)


def _check_parent(
    path: Path,
    *,
    what: str,
    require_root_owned: bool,
    allowed_owners: frozenset[int],
    error: type[Exception],
) -> None:
    parent = path.absolute().parent
    try:
        info = parent.stat()
    except OSError:
        raise error(f"the directory of {what} {path} cannot be inspected") from None
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        raise error(
            f"the directory {parent} holding {what} has mode {mode:04o}; a group- or "
            "world-writable directory lets others replace the file"
        )
    if require_root_owned and info.st_uid not in allowed_owners:
        raise error(f"the directory {parent} holding {what} must be owned by root")


def _describe_bits(bits: int) -> str:
    parts = []
    if bits & 0o020:
        parts.append("group-writable")
    if bits & 0o002:
        parts.append("world-writable")
    if bits & 0o040:
        parts.append("group-readable")
    if bits & 0o004:
        parts.append("world-readable")
    if bits & 0o011:
        parts.append("executable by others")
    return " or ".join(parts) or f"mode bits {bits:04o}"


def load_profiles(path: Path, *, require_root_owned: bool) -> dict[str, Profile]:
    """Load and validate a profiles file; raise :class:`ProfileError` with a clear reason.

    Always refused: a group- or world-writable file (or directory), a symlink, TOML
    errors, unknown fields, shell-string argv, unknown placeholders. With
    ``require_root_owned`` (production), the file and its directory must belong to root.
    """
    data = read_host_file(
        path,
        what="profiles file",
        require_root_owned=require_root_owned,
        forbidden_mode_bits=0o022,
        max_bytes=MAX_PROFILE_FILE_BYTES,
    )
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProfileError(f"profiles file {path} is not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profiles file {path} is not valid TOML: {exc}") from None
    try:
        parsed = ProfilesFile.model_validate(raw)
    except ValidationError as exc:
        raise ProfileError(f"profiles file {path} is invalid: {_summarise(exc)}") from None
    return dict(parsed.profiles)


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = err["loc"]
        message = err["msg"].removeprefix("Value error, ")
        if len(loc) >= 2 and loc[0] == "profiles":
            rest = ".".join(str(part) for part in loc[2:])
            where = f"profile {loc[1]!r}" + (f", {rest}" if rest else "")
        else:
            where = ".".join(str(part) for part in loc) or "<file>"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- argv


def render_argv(
    profile: Profile,
    *,
    workspace: Path,
    model: str | None = None,
    max_turns: int | None = None,
    python: str | None = None,
) -> list[str]:
    """Substitute placeholders per element; values are never re-scanned or formatted.

    Values are checked: a value may not start with ``-`` (it would be read as an
    option), contain NUL/newlines, and ``model`` must look like a model name.
    """
    if not workspace.is_absolute():
        raise ProfileError("workspace must be an absolute path")
    values: dict[str, str] = {
        "workspace": str(workspace),
        "python": python if python is not None else sys.executable,
    }
    if model is not None:
        if not _MODEL_RE.match(model):
            raise ProfileError("model name has characters that are not allowed")
        values["model"] = model
    if max_turns is not None:
        if isinstance(max_turns, bool) or not 1 <= max_turns <= 1000:
            raise ProfileError("max_turns must be an integer between 1 and 1000")
        values["max_turns"] = str(max_turns)
    missing = profile.placeholders - values.keys()
    if missing:
        raise ProfileError(f"no value for placeholder(s): {', '.join(sorted(missing))}")
    for name, value in values.items():
        _check_value(name, value)
    return [_substitute(element, values) for element in profile.argv]


def _check_value(name: str, value: str) -> None:
    if value == "" or value.startswith("-"):
        raise ProfileError(f"value of {{{name}}} may not be empty or start with '-'")
    if "\x00" in value or "\n" in value or "\r" in value:
        raise ProfileError(f"value of {{{name}}} contains a NUL or newline")


def _substitute(element: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER_RE.sub(lambda match: values[match.group(1)], element)
