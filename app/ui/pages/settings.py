"""The settings page: your password; API tokens, users and the VPN peers read from
the status file (``app/vpn/status.py``) for an admin.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.auth import service as auth_service
from app.auth import store as auth_store
from app.core.context import Ctx
from app.core.pagination import Pagination
from app.security.principal import Scope
from app.ui.auth import UiSession
from app.ui.page_kit import pager, ui_page
from app.vpn.status import read_peer_status

router = APIRouter(include_in_schema=False)


@router.get("/ui/settings", response_class=HTMLResponse)
async def settings_page(
    request: Request, principal: UiSession, ctx: Ctx, page_params: Pagination
) -> HTMLResponse:
    tokens: list[Any] = []
    users: list[Any] = []
    token_pager = user_pager = None
    vpn = None
    if principal.scope.allows(Scope.ADMIN):
        vpn = await asyncio.to_thread(read_peer_status, ctx.settings.vpn_status_path)
        token_rows, token_total = await auth_store.list_tokens(ctx.db, page_params)
        tokens = [auth_service.token_view(r) for r in token_rows]
        token_pager = pager(request, (token_total, page_params))
        user_rows, user_total = await auth_store.list_users(ctx.db, page_params)
        users = [auth_service.user_view(r) for r in user_rows]
        user_pager = pager(request, (user_total, page_params))
    return await ui_page(
        request,
        principal,
        ctx,
        "settings.html",
        title="Settings",
        section="settings",
        tokens=tokens,
        users=users,
        token_pager=token_pager,
        user_pager=user_pager,
        scopes=[s.value for s in Scope],
        vpn=vpn,
    )
