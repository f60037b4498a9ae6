"""The routes around the pages: the login page (``GET /``) and its assets
(``/static/...``), the only ones that answer without a session (``PUBLIC_ROUTES``
in ``app/main.py``); and the UI's scripts, served from memory to a logged-in
session only (``/ui/static/...``)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from app.access.dependencies import SESSION_COOKIE, authenticate
from app.core.context import Ctx
from app.core.errors import ApiError
from app.ui.auth import UiSession, safe_next
from app.ui.render import ASSETS, PUBLIC_ASSETS, Asset, render_html

router = APIRouter(include_in_schema=False)


def _asset_response(asset: Asset, version: str | None) -> Response:
    cache = "private, max-age=31536000, immutable" if version == asset.digest else "no-cache"
    return Response(
        asset.body,
        media_type=asset.content_type,
        headers={"cache-control": cache, "etag": f'"{asset.digest}"'},
    )


@router.get("/", response_class=HTMLResponse)
async def login_page(
    request: Request,
    ctx: Ctx,
    next_path: Annotated[str | None, Query(alias="next", max_length=300)] = None,
) -> Response:
    """Public. The login form; a logged-in browser goes straight to the UI."""
    target = safe_next(next_path)
    if request.cookies.get(SESSION_COOKIE):
        try:
            principal = await authenticate(request, ctx)
        except ApiError:
            principal = None
        if principal is not None and principal.kind == "session":
            return RedirectResponse(target, status_code=303)
    return render_html("login.html", next_path=target)


def _public_asset(name: str) -> Callable[[str | None], Awaitable[Response]]:
    asset = ASSETS[name]

    async def serve(v: Annotated[str | None, Query(max_length=64)] = None) -> Response:
        return _asset_response(asset, v)

    serve.__name__ = "public_asset_" + re.sub(r"\W", "_", name)
    return serve


for _name in PUBLIC_ASSETS:
    router.add_api_route(f"/static/{_name}", _public_asset(_name), methods=["GET"])


@router.get("/ui/static/{name}")
async def ui_asset(
    name: str, _: UiSession, v: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    """The UI's scripts: only for a logged-in session."""
    asset = ASSETS.get(name)
    if asset is None:
        raise ApiError(404, "not_found", "no such file")
    return _asset_response(asset, v)
