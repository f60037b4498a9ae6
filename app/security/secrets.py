"""Server-side keys (F23): generated on first start, stored 0600, never a default.

Start-up fails when a key file is readable by others, too short, or holds a
known placeholder such as ``change-me``.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from pydantic import SecretStr

MIN_KEY_BYTES = 32
KNOWN_PLACEHOLDERS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "change-in-prod",
        "changeinprod",
        "change-this",
        "secret",
        "password",
        "dev",
        "development",
        "default",
        "insecure",
        "test",
        "xxx",
        "todo",
        "placeholder",
    }
)


class SecretError(RuntimeError):
    """A server secret is missing, unsafe or a placeholder."""


def _is_placeholder(value: str) -> bool:
    folded = value.strip().lower()
    squashed = folded.replace(" ", "").replace("_", "-")
    return (
        folded in KNOWN_PLACEHOLDERS
        or squashed in KNOWN_PLACEHOLDERS
        or ("change" in folded and ("prod" in folded or "me" in folded))
        or len(set(folded)) <= 2
    )


def check_secret_value(value: str, *, name: str) -> str:
    if _is_placeholder(value):
        raise SecretError(f"{name} is a known placeholder; remove it to have one generated")
    if len(value.encode()) < MIN_KEY_BYTES:
        raise SecretError(f"{name} is shorter than {MIN_KEY_BYTES} bytes")
    return value


def load_or_create_key(directory: Path, name: str) -> str:
    """Return the key stored in ``directory/name``, creating it (0600) if absent."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    dir_mode = stat.S_IMODE(directory.stat().st_mode)
    if dir_mode & 0o077:
        directory.chmod(dir_mode & 0o700)
    path = directory / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise SecretError(
                f"key file {path} is readable by others (mode {mode:o}); run chmod 600"
            ) from None
        return check_secret_value(path.read_text().strip(), name=str(path))
    value = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def server_key(directory: Path, configured: SecretStr | None) -> bytes:
    """The key that peppers token hashes: configured explicitly or generated."""
    if configured is not None:
        return check_secret_value(configured.get_secret_value(), name="MC_SECRET_KEY").encode()
    return load_or_create_key(directory, "server.key").encode()
