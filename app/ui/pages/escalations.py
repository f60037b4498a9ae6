"""The escalations page: unresolved by default, or by status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.core.context import Ctx
from app.core.pagination import Pagination
from app.escalations import service as escalations_service
from app.escalations import store as escalations_store
from app.ui import store
from app.ui.auth import UiSession
from app.ui.page_kit import SUBJECT_LINKS, pager, ui_page

router = APIRouter(include_in_schema=False)


@router.get("/ui/escalations", response_class=HTMLResponse)
async def escalations_page(
    request: Request,
    principal: UiSession,
    ctx: Ctx,
    page_params: Pagination,
    status: Annotated[
        str | None, Query(pattern=r"^(unresolved|open|acknowledged|resolved|all)$")
    ] = None,
) -> HTMLResponse:
    chosen = status or "unresolved"
    if chosen == "unresolved":
        rows, total = await store.unresolved_escalations(ctx.db, page_params)
    else:
        rows, total = await escalations_store.list_escalations(
            ctx.db, page_params, status=None if chosen == "all" else chosen
        )
    return await ui_page(
        request,
        principal,
        ctx,
        "escalations.html",
        title="Escalations",
        section="escalations",
        escalations=[escalations_service.escalation_view(r) for r in rows],
        summary=await escalations_service.summary(ctx),
        agent_names=await store.agent_names(ctx.db),
        links=SUBJECT_LINKS,
        status=chosen,
        pager=pager(request, (total, page_params)),
    )
