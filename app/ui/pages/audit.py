"""The audit log page (scope admin): filtered by action prefix and actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.audit.store import list_records as list_audit_records
from app.core.context import Ctx
from app.core.pagination import Pagination
from app.security.principal import Scope
from app.ui.auth import UiSession, refuse_page
from app.ui.page_kit import pager, ui_page

router = APIRouter(include_in_schema=False)


@router.get("/ui/audit", response_class=HTMLResponse)
async def audit_page(
    request: Request,
    principal: UiSession,
    ctx: Ctx,
    page_params: Pagination,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
) -> HTMLResponse:
    if not principal.scope.allows(Scope.ADMIN):
        return await refuse_page(request, ctx, principal, Scope.ADMIN)
    records = await list_audit_records(ctx.db, page_params, action=action, actor=actor)
    return await ui_page(
        request,
        principal,
        ctx,
        "audit.html",
        title="Audit log",
        section="audit",
        records=records.items,
        action=action or "",
        actor=actor or "",
        pager=pager(request, records),
    )
