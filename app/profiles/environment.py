"""The environment an agent run receives (F24): allow-listed names only.

Values come from two places and no other:

* the profile's credential file (``NAME=value`` lines; root-owned, mode 0600/0400),
  read at run time: the provider key never lives in the database, the API or the
  worker's own environment;
* values the worker passes explicitly for this run (``provided``).

``os.environ`` of the worker is never consulted: a key exported in the worker's
environment does *not* reach the agent. The runner adds PATH, HOME, LANG and
TMPDIR itself (:func:`app.runner.process.run_confined`); the worker's output gate
(:func:`app.runner.gate.output_gate`) redacts the values this module reads.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from app.profiles.profiles import Profile, read_host_file

log = logging.getLogger("mission_control.profiles.environment")

MAX_CREDENTIAL_FILE_BYTES = 64 * 1024
_LINE_RE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


class CredentialError(Exception):
    """A credential file or a child environment is refused; never carries a secret value."""


class ChildEnv(Mapping[str, str]):
    """The environment of one run. ``repr`` shows names only, never values."""

    __slots__ = ("_extra_secrets", "_secret_names", "_values")

    def __init__(
        self,
        values: Mapping[str, str],
        secret_names: frozenset[str],
        extra_secrets: frozenset[str] = frozenset(),
    ) -> None:
        self._values = dict(values)
        self._secret_names = secret_names
        #: secret values the run can reach outside its environment (a login file)
        self._extra_secrets = extra_secrets

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"ChildEnv(names={sorted(self._values)!r})"

    __str__ = __repr__

    def with_values(self, values: Mapping[str, str]) -> ChildEnv:
        """This environment plus ``values`` (a runtime's fixed settings; not secrets)."""
        return ChildEnv(
            {**self._values, **values}, self._secret_names - set(values), self._extra_secrets
        )

    def with_secrets(self, values: frozenset[str]) -> ChildEnv:
        """This environment, with more values the gate must redact (a subscription
        login's tokens, which the run reads from a file, not from its environment)."""
        return ChildEnv(self._values, self._secret_names, self._extra_secrets | values)

    @property
    def secret_values(self) -> frozenset[str]:
        """Values that came from the credential file or a login: exact strings the
        credential gate should redact from the agent's output before it is stored."""
        named = (self._values[name] for name in self._secret_names if self._values[name])
        return frozenset(named) | self._extra_secrets


def read_credential_file(path: Path, *, require_root_owned: bool) -> dict[str, str]:
    """Parse ``NAME=value`` lines (``#`` comments, blank lines, optional ``export``,
    optional matching quotes). Refuses a file readable or writable by group/others.

    With ``require_root_owned`` the owner must be root, or the worker's own user
    (a systemd ``LoadCredential=`` copy under ``/run/credentials/<unit>/``).
    """
    data = read_host_file(
        path,
        what="credential file",
        require_root_owned=require_root_owned,
        forbidden_mode_bits=0o077,
        max_bytes=MAX_CREDENTIAL_FILE_BYTES,
        allowed_owners=frozenset({0, os.geteuid()}),
        error=CredentialError,
    )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialError(f"credential file {path} is not UTF-8") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE_RE.match(stripped)
        if match is None:
            # The line may be a bare secret: say where, never what.
            raise CredentialError(f"credential file {path}: line {number} is not NAME=value")
        name, value = match.group(1), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if "\x00" in value:
            raise CredentialError(f"credential file {path}: line {number} holds a NUL byte")
        if name in values:
            raise CredentialError(f"credential file {path}: {name} is defined twice")
        values[name] = value
    return values


def build_child_env(
    profile: Profile,
    *,
    require_root_owned: bool,
    provided: Mapping[str, str] | None = None,
) -> ChildEnv:
    """The allow-listed environment of one run of ``profile``.

    ``provided`` are per-run values from the worker; a name outside
    ``profile.env_allow`` is refused (a programming error, not silently dropped).
    Credential-file names outside the allow-list are ignored (logged by name only).
    Credential-file values win over provided ones.
    """
    allowed = set(profile.env_allow)
    values: dict[str, str] = {}
    for name, value in (provided or {}).items():
        if name not in allowed:
            raise CredentialError(f"{name} is not in env_allow of this profile")
        if "\x00" in value:
            raise CredentialError(f"value of {name} holds a NUL byte")
        values[name] = value
    secret_names: set[str] = set()
    if profile.credential_file is not None:
        credentials = read_credential_file(
            profile.credential_file, require_root_owned=require_root_owned
        )
        ignored = sorted(set(credentials) - allowed)
        if ignored:
            log.info(
                "credential file entries not allow-listed for this profile were ignored",
                extra={"names": ignored},
            )
        for name in allowed & credentials.keys():
            values[name] = credentials[name]
            secret_names.add(name)
    return ChildEnv(values, frozenset(secret_names))
