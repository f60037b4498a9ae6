"""Admin-only management of API tokens and users (F25, F26)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from app.access.caller import AdminCaller
from app.access.dependencies import AdminAccess
from app.auth import service, store
from app.auth.schemas import (
    PasswordReset,
    TokenCreate,
    TokenCreated,
    TokenView,
    UserCreate,
    UserUpdate,
    UserView,
)
from app.core.context import Ctx
from app.core.pagination import Page, Pagination

router = APIRouter(prefix="/api", tags=["admin"])


@router.post("/tokens", status_code=201, response_model=TokenCreated)
async def create_token(body: TokenCreate, caller: AdminCaller, ctx: Ctx) -> TokenCreated:
    """Admin only. Create an API token; the token is in this answer and never again.

    The new token belongs to the caller's human: the logged-in user, or the
    owner of the calling token. A token without an owner cannot create one."""
    return await service.create_token_as(
        ctx.db,
        ctx.server_key,
        name=body.name,
        scope=body.scope,
        expires_days=body.expires_days,
        caller=caller,
    )


@router.get("/tokens", response_model=Page[TokenView])
async def list_tokens(_: AdminAccess, page: Pagination, ctx: Ctx) -> Page[TokenView]:
    """Admin only. Tokens by public id; never their secret or hash."""
    rows, total = await store.list_tokens(ctx.db, page)
    return Page[TokenView].build([service.token_view(r) for r in rows], total, page)


@router.delete("/tokens/{public_id}", status_code=204)
async def revoke_token(public_id: str, caller: AdminCaller, ctx: Ctx) -> Response:
    """Admin only. Revoke a token at once."""
    await service.revoke_token_as(ctx.db, public_id[:32], caller)
    return Response(status_code=204)


@router.post("/users", status_code=201, response_model=UserView)
async def create_user(body: UserCreate, caller: AdminCaller, ctx: Ctx) -> UserView:
    """Admin only. Create a UI user with a role (read, operate or admin)."""
    return await service.create_user_as(
        ctx.db, username=body.username, password=body.password, role=body.role, caller=caller
    )


@router.get("/users", response_model=Page[UserView])
async def list_users(_: AdminAccess, page: Pagination, ctx: Ctx) -> Page[UserView]:
    """Admin only."""
    rows, total = await store.list_users(ctx.db, page)
    return Page[UserView].build([service.user_view(r) for r in rows], total, page)


@router.patch("/users/{user_id}", response_model=UserView)
async def update_user(
    user_id: Annotated[int, Path(ge=1, le=2**53)],
    body: UserUpdate,
    caller: AdminCaller,
    ctx: Ctx,
) -> UserView:
    """Admin only. Change a user's role or disable the account."""
    return await service.update_user(
        ctx.db, user_id=user_id, role=body.role, disabled=body.disabled, caller=caller
    )


@router.put("/users/{username}/password", status_code=204)
async def reset_password(
    username: str, body: PasswordReset, caller: AdminCaller, ctx: Ctx
) -> Response:
    """Admin only. Set a user's password; their sessions end."""
    await service.reset_password_as(
        ctx.db, username=username[:64], password=body.new_password, caller=caller
    )
    return Response(status_code=204)
