"""The account page: your second factor (TOTP) and recovery codes.

The page only reads; enrolling, confirming and turning the factor off go
through the JSON API (``app.auth.account_router``), each behind a step-up where
it matters. The secret, its QR code and the recovery codes reach the browser
once, in the answer of the request that made them (``account.js``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.auth import totp
from app.core.context import Ctx
from app.ui.auth import UiSession
from app.ui.page_kit import ui_page

router = APIRouter(include_in_schema=False)


@router.get("/ui/account", response_class=HTMLResponse)
async def account_page(request: Request, principal: UiSession, ctx: Ctx) -> HTMLResponse:
    assert principal.user_id is not None  # a UI session always has its user
    async with ctx.db.read() as conn:
        enrolled, left = await totp.status(conn, principal.user_id)
    return await ui_page(
        request,
        principal,
        ctx,
        "account.html",
        title="Your account",
        section="account",
        totp_enrolled=enrolled,
        recovery_left=left,
        step_up_seconds=ctx.settings.step_up_seconds,
    )
