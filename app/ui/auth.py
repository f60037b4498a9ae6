"""Who may see a UI page: a logged-in session, nothing else (F1, F3, F25).

Without a valid session a page answers like every other protected route:
401 in the JSON error shape. Only a browser navigating to the page (a GET whose
``Accept`` names ``text/html``) is sent to the login page instead, with a 303
whose body is the same JSON error: the refusal is the same, only the way out
differs. An API token is refused here: the UI's forms need the session's CSRF
token, and a token's holder has the JSON API.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from app.access.dependencies import authenticate, client_address, unauthenticated
from app.access.refusals import record_refusal
from app.core.context import AppContext, Ctx
from app.core.errors import ApiError
from app.security.principal import Principal, Scope
from app.ui.render import page

#: Where a login may send the browser afterwards: a UI page, nothing else.
_NEXT_RE = re.compile(r"^/ui/[A-Za-z0-9/_.\-]*(\?[A-Za-z0-9_=&%.\-]*)?$")
MAX_NEXT = 300


def wants_html(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "").lower()


def safe_next(value: str | None) -> str:
    """A local UI path to return to after login; '/ui/' for anything else."""
    if (
        value
        and len(value) <= MAX_NEXT
        and _NEXT_RE.match(value)
        and "//" not in value
        and ".." not in value
    ):
        return value
    return "/ui/"


def login_location(request: Request) -> str:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    target = safe_next(target)
    return "/" if target == "/ui/" else "/?" + urlencode({"next": target})


async def ui_session(request: Request, ctx: Ctx) -> Principal:
    """The logged-in user of a UI page (never an API token)."""
    try:
        principal = await authenticate(request, ctx)
    except ApiError as exc:
        if exc.status == 401 and wants_html(request):
            raise ApiError(
                303,
                "login_required",
                "log in to use Mission Control",
                headers={"Location": login_location(request)},
            ) from None
        raise
    if principal.kind != "session" or not principal.csrf_token:
        raise unauthenticated("the web UI needs a login session; log in at /")
    return principal


UiSession = Annotated[Principal, Depends(ui_session)]


async def refuse_page(
    request: Request, ctx: AppContext, principal: Principal, needed: Scope
) -> HTMLResponse:
    """A 403 page for a role that may not see this page; recorded like the API does."""
    await record_refusal(
        ctx,
        actor=principal.actor,
        client=client_address(request),
        action=f"GET {request.url.path}",
        target=request.url.path,
        reason=f"needs scope {needed.value}, has {principal.scope.value}",
    )
    return page(
        request,
        principal,
        "forbidden.html",
        title="Not allowed",
        section="",
        status_code=403,
        needed=needed.value,
    )
