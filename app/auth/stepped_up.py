"""``SteppedUp``: the route dependency of the step-up (``app.auth.step_up``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.access.caller import AuthenticatedCaller, Caller
from app.auth.step_up import require_fresh
from app.core.context import Ctx


async def stepped_up_session(caller: AuthenticatedCaller, request: Request, ctx: Ctx) -> Caller:
    """Dependency: a browser session whose user stepped up within the window."""
    await require_fresh(
        ctx,
        caller,
        action=f"{request.method} {request.url.path}",
        target=request.url.path,
    )
    return caller


SteppedUp = Annotated[Caller, Depends(stepped_up_session)]
