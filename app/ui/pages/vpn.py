"""The VPN peers page (scope admin): the peers (``app/vpn/peers.py``), add one (after a
step-up), revoke; the changes go through ``/api/vpn/peers`` (docs/vpn.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.auth import totp
from app.core.context import Ctx
from app.security.principal import Scope
from app.ui.auth import UiSession, refuse_page
from app.ui.page_kit import ui_page
from app.vpn.helper import NAME_PATTERN, NAME_RULE
from app.vpn.peers import peers_view

router = APIRouter(include_in_schema=False)


@router.get("/ui/vpn", response_class=HTMLResponse)
async def vpn_page(request: Request, principal: UiSession, ctx: Ctx) -> HTMLResponse:
    if not principal.scope.allows(Scope.ADMIN):
        return await refuse_page(request, ctx, principal, Scope.ADMIN)
    enrolled = principal.user_id is not None and await totp.is_enrolled(ctx, principal.user_id)
    return await ui_page(
        request,
        principal,
        ctx,
        "vpn.html",
        title="VPN peers",
        section="vpn",
        view=await peers_view(ctx.settings),
        # the browser compiles pattern= with the v flag: "-" escaped in a class
        name_pattern=NAME_PATTERN.strip("^$").replace("-]", "\\-]"),
        name_rule=NAME_RULE,
        second_factor=enrolled,
    )
