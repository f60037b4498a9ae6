"""Admin-only reading and verification of the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.access.dependencies import AdminAccess
from app.audit import store
from app.audit.schemas import AuditRecord, ChainStatus
from app.core.context import Ctx
from app.core.pagination import Page, Pagination
from app.security import audit

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("", response_model=Page[AuditRecord])
async def list_audit(
    _: AdminAccess,
    page: Pagination,
    ctx: Ctx,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
) -> Page[AuditRecord]:
    """Admin only. Newest first, filterable by action prefix and actor."""
    return await store.list_records(ctx.db, page, action=action, actor=actor)


@router.get("/verify", response_model=ChainStatus)
async def verify_chain(_: AdminAccess, ctx: Ctx) -> ChainStatus:
    """Admin only. Walk the hash chain and report the first tampered record."""
    report = await audit.verify(ctx.db)
    return ChainStatus(
        ok=report.ok, checked=report.checked, first_bad_id=report.first_bad_id, reason=report.reason
    )
