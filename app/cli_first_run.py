"""First start of ``make run``: a local admin with a generated password.

The password is written to a 0600 file next to the database, never to a log,
a URL or the terminal scroll-back. The terminal says where the UI is and where
the file is; the UI then asks to change the password, which removes the file.
"""

from __future__ import annotations

import secrets

from app.auth import service, store
from app.auth.initial import ADMIN_NAME, write_initial_password
from app.core.database import Database
from app.core.settings import Settings
from app.security.principal import Scope


def ui_address(settings: Settings) -> str:
    """Where a browser finds the UI of this install."""
    if settings.listen_uds is not None:
        return "https://<the Pi's VPN address>/ (through nginx and the VPN)"
    host = settings.host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding it
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.tls else "http"
    return f"{scheme}://{host}:{settings.port}/"


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
    path = write_initial_password(settings.state_dir, password).absolute()
    print(
        "\nFirst start: created the user 'admin'.\n"
        f"  Open the UI:   {ui_address(settings)}\n"
        f"  User name:     {ADMIN_NAME}\n"
        f"  Password:      in {path} (mode 0600; show it with  cat {path} )\n"
        "  The UI then asks you to choose your own password; the file is removed when you do.\n"
    )
    return 0
