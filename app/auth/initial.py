"""The first admin's generated password file (``$MC_STATE_DIR/initial-admin-password``).

``missionctl first-run`` writes it (mode 0600) so the owner can log in once.
The UI asks the user it was made for to change the password while the file
exists, and the password change removes the file when it held the password
that was just replaced: a generated password never outlives its first use.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

FILE_NAME = "initial-admin-password"
#: the user ``missionctl first-run`` creates
ADMIN_NAME = "admin"


def initial_password_path(state_dir: Path) -> Path:
    return state_dir / FILE_NAME


def write_initial_password(state_dir: Path, password: str) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = initial_password_path(state_dir)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return path


def pending_for(state_dir: Path, username: str) -> Path | None:
    """The file's path when it still exists and was made for ``username``."""
    path = initial_password_path(state_dir)
    if username.casefold() != ADMIN_NAME or not path.is_file():
        return None
    return path.absolute()


def holds_initial_password(state_dir: Path, password: str) -> bool:
    """Whether the file exists and holds ``password`` (the one about to be replaced)."""
    try:
        with initial_password_path(state_dir).open("rb") as handle:
            stored = handle.read(4096).strip()
    except OSError:
        return False
    return hmac.compare_digest(stored, password.strip().encode())


def remove_initial_password(state_dir: Path) -> None:
    initial_password_path(state_dir).unlink(missing_ok=True)
