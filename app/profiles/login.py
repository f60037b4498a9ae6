"""Subscription logins: a CLI's own login, seen read-only by a run instead of an API
key (docs/capability.md, "Subscription logins").

A profile's ``login_dir`` is a directory the owner made once on the Pi (for example
``sudo HOME=/etc/mission-control/logins/claude claude auth login``). It holds the
CLI's login file at the path the CLI uses under HOME
(:data:`app.profiles.runtime_options.LOGIN_FILES`). Before each run the worker:

* refuses the directory (:class:`LoginError`, fail closed, the reason in words)
  when it is a symlink, not a directory, not owned by root, or group- or
  world-writable; the same for every directory on the way to a login file; a
  login file must be a regular file owned by root, not group-writable and not
  readable by others (root-owned, group ``mission-control``, mode 0640 or 0600);
* reads the login file (JSON) for its secret values, which join the profile's
  credential values in the output gate (:func:`app.runner.gate.output_gate`):
  transcript, live output and stored results get the marker, never the token;
* links each login file into the run's fresh HOME (a symlink to the file in the
  login directory) and gives the run's Landlock policy a read right on that one
  file (:class:`app.runner.sandbox.RunRights`): not the directory, not its other
  files, no write, truncate, rename or delete. The run gets nothing else of the
  login directory and nothing of the worker's own home.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.profiles.environment import CredentialError
from app.profiles.profiles import read_host_file
from app.profiles.runtime_options import LOGIN_FILES

MAX_LOGIN_FILE_BYTES = 64 * 1024
#: a string this long in a login file is treated as a secret value
_SECRET_MIN_LENGTH = 16
#: a string under a key naming one of these is a secret value whatever its length
_SECRET_KEY_WORDS = ("token", "secret", "key", "password", "credential")


class LoginError(CredentialError):
    """A login directory or file is refused; never carries a secret value."""


@dataclass(frozen=True, slots=True)
class Login:
    """A checked login: which files a run sees and the values the gate redacts."""

    directory: Path
    #: (path relative to HOME, real path of the login file)
    files: tuple[tuple[str, str], ...]
    secret_values: frozenset[str]

    def __repr__(self) -> str:
        return f"Login(directory={str(self.directory)!r}, files={[f for f, _ in self.files]!r})"

    __str__ = __repr__

    @property
    def paths(self) -> tuple[str, ...]:
        """The login files, for the run's read-only Landlock rules."""
        return tuple(real for _, real in self.files)

    def link_into(self, home: Path) -> None:
        """Each login file as a symlink at its place in the run's fresh HOME."""
        for relative, real in self.files:
            link = home / relative
            link.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            link.symlink_to(real)


def _check_directory(path: Path, *, what: str) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise LoginError(f"{what} {path} does not exist") from None
    except OSError:
        raise LoginError(f"{what} {path} cannot be inspected") from None
    if stat.S_ISLNK(info.st_mode):
        raise LoginError(f"{what} {path} is a symlink; refusing it (name the real directory)")
    if not stat.S_ISDIR(info.st_mode):
        raise LoginError(f"{what} {path} is not a directory")
    if info.st_uid != 0:
        raise LoginError(
            f"{what} {path} is owned by uid {info.st_uid}; it must be owned by root"
            f" (sudo chown -R root:mission-control {path})"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        raise LoginError(
            f"{what} {path} has mode {mode:04o}; a group- or world-writable directory lets"
            f" others replace the login (sudo chmod -R g-w,o-w {path})"
        )


def _secret_strings(value: Any, key: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _secret_strings(item, str(name).lower())
    elif isinstance(value, list):
        for item in value:
            yield from _secret_strings(item, key)
    elif isinstance(value, str) and (
        len(value) >= _SECRET_MIN_LENGTH or any(word in key for word in _SECRET_KEY_WORDS)
    ):
        yield value


def load_login(directory: Path, runtime: str) -> Login:
    """Check ``directory`` and the login files of ``runtime`` in it; raises
    :class:`LoginError` with the reason and the fix."""
    relatives = LOGIN_FILES.get(runtime)
    if relatives is None:
        raise LoginError(f"the {runtime} runtime has no subscription login")
    if not directory.is_absolute():
        raise LoginError("login_dir must be an absolute path")
    _check_directory(directory, what="login directory")
    files: list[tuple[str, str]] = []
    secrets: set[str] = set()
    for relative in relatives:
        parts = Path(relative).parts
        current = directory
        for part in parts[:-1]:
            current = current / part
            _check_directory(current, what="login directory")
        path = directory / relative
        data = read_host_file(
            path,
            what="login file",
            require_root_owned=True,
            forbidden_mode_bits=0o027,
            max_bytes=MAX_LOGIN_FILE_BYTES,
            error=LoginError,
        )
        try:
            parsed = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            # the content may be a secret: say where, never what
            raise LoginError(
                f"login file {path} is not JSON: log in again into {directory}"
            ) from None
        secrets.update(_secret_strings(parsed))
        files.append((relative, os.path.realpath(path)))
    return Login(directory, tuple(files), frozenset(secrets))
