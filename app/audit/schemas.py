"""What the audit API returns."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class AuditRecord(BaseModel):
    id: int
    ts: str
    actor: str
    action: str
    target: str
    client: str
    outcome: str
    summary: dict[str, Any]
    hash: str


class ChainStatus(BaseModel):
    ok: bool
    checked: int
    first_bad_id: int | None
    reason: str | None
