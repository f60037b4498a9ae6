"""First start of ``make run``: a local admin with a generated password.

The password is written to a 0600 file next to the database, never to a log,
a URL or the terminal scroll-back.
"""

from __future__ import annotations

import os
import secrets

from app.auth import service, store
from app.core.database import Database
from app.core.settings import Settings
from app.security.principal import Scope

ADMIN_NAME = "admin"


async def first_run(db: Database, settings: Settings) -> int:
    if await store.count_users(db) > 0:
        return 0
    password = secrets.token_urlsafe(18)
    await service.create_user(
        db,
        username=ADMIN_NAME,
        password=password,
        role=Scope.ADMIN,
        actor="cli:first-run",
        client="cli",
    )
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    path = settings.state_dir / "initial-admin-password"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    print(
        "\nFirst start: created the user 'admin'.\n"
        f"  Its password is in {path} (mode 0600): read it with  cat {path}\n"
        "  then log in with  POST /api/auth/login  and delete the file.\n"
        "  An API token:  .venv/bin/missionctl token create --name laptop --scope admin\n"
    )
    return 0
