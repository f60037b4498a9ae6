"""An audit record of a ``Caller``'s act (``app/access/caller.py``): the audit log's
``actor`` and ``client`` are the caller's, so a function holding the caller passes
it whole instead of the pair (``app.security.audit`` keeps the plain fields for
what acts without a principal: a login attempt, the CLI)."""

from __future__ import annotations

from typing import Any

import aiosqlite

from app.access.caller import Caller
from app.core.database import Database
from app.security import audit


async def append_as(
    conn: aiosqlite.Connection,
    caller: Caller,
    action: str,
    *,
    target: str = "",
    outcome: str = "ok",
    summary: dict[str, Any] | None = None,
) -> int:
    """One record inside the write transaction ``conn`` (``audit.append``)."""
    return await audit.append(
        conn,
        actor=caller.actor,
        action=action,
        target=target,
        client=caller.client,
        outcome=outcome,
        summary=summary,
    )


async def record_as(
    db: Database,
    caller: Caller,
    action: str,
    *,
    target: str = "",
    outcome: str = "ok",
    summary: dict[str, Any] | None = None,
) -> int:
    """One record in a transaction of its own (``audit.record``)."""
    async with db.write() as conn:
        return await append_as(
            conn, caller, action, target=target, outcome=outcome, summary=summary
        )
