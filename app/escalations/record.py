"""The escalations domain's sink for the write transaction: the row of an
escalation opened in the caller's transaction (the transaction announces it)."""

from __future__ import annotations

from typing import Any

from app.escalations.store import insert_escalation
from app.events.transaction import Tx


async def record_escalation(
    tx: Tx,
    kind: str,
    subject_type: str,
    subject_id: int | None,
    reason: str,
    details: dict[str, Any],
) -> int:
    return await insert_escalation(
        tx.conn,
        kind=kind,
        subject_type=subject_type,
        subject_id=subject_id,
        reason=reason,
        details=details,
    )
