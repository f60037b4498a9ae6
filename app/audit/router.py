"""Admin-only reading and verification of the audit log."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.core.context import Ctx
from app.core.pagination import Page, Pagination
from app.security import audit
from app.security.dependencies import AdminAccess

router = APIRouter(prefix="/api/audit", tags=["audit"])


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


@router.get("", response_model=Page[AuditRecord])
async def list_audit(
    _: AdminAccess,
    page: Pagination,
    ctx: Ctx,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
) -> Page[AuditRecord]:
    """Admin only. Newest first, filterable by action prefix and actor."""
    where, params = ["1 = 1"], []
    if action:
        where.append("action LIKE ? ESCAPE '\\'")
        params.append(action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if actor:
        where.append("actor = ?")
        params.append(actor)
    clause = " AND ".join(where)
    rows = await ctx.db.fetch_all(
        f"SELECT id, ts, actor, action, target, client, outcome, summary, hash FROM audit_log"
        f" WHERE {clause} ORDER BY id DESC LIMIT ? OFFSET ?",
        (*params, page.limit, page.offset),
    )
    total_row = await ctx.db.fetch_one(
        f"SELECT count(*) FROM audit_log WHERE {clause}",
        params,
    )
    items = [AuditRecord(**{**dict(r), "summary": json.loads(r["summary"])}) for r in rows]
    return Page[AuditRecord].build(items, int(total_row[0]) if total_row else 0, page)


@router.get("/verify", response_model=ChainStatus)
async def verify_chain(_: AdminAccess, ctx: Ctx) -> ChainStatus:
    """Admin only. Walk the hash chain and report the first tampered record."""
    report = await audit.verify(ctx.db)
    return ChainStatus(
        ok=report.ok, checked=report.checked, first_bad_id=report.first_bad_id, reason=report.reason
    )
