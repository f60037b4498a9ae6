"""``SteppedUp``: the route dependency of the step-up (``app.auth.step_up``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.access.dependencies import authenticate, client_address
from app.auth.step_up import require_fresh
from app.core.context import Ctx
from app.security.principal import Principal


async def stepped_up_session(request: Request, ctx: Ctx) -> Principal:
    """Dependency: a browser session whose user stepped up within the window."""
    principal = await authenticate(request, ctx)
    await require_fresh(
        ctx,
        principal,
        client_address(request),
        action=f"{request.method} {request.url.path}",
        target=request.url.path,
    )
    return principal


SteppedUp = Annotated[Principal, Depends(stepped_up_session)]
