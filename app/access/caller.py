"""Who is calling and from where, as one value a route hands to its service (F25).

A route that changes something takes ``caller: OperateCaller`` (or ``ReadCaller``,
``AdminCaller``, ``AuthenticatedCaller``) instead of a principal and the request:
the scope is checked by the same dependencies as ``ReadAccess``/``OperateAccess``/
``AdminAccess`` (``app.access.dependencies``: ``authenticate`` and ``require``), and
the client address is the one the edge middleware computed (``client_address``).
The service reads ``caller.actor`` and ``caller.client`` for its audit record and
``caller.principal`` for the rest (a human's id, the scope).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, get_args

from app.security.principal import Principal


@dataclass(frozen=True)
class Caller:
    """An authenticated principal and the client address of its request."""

    principal: Principal
    client: str

    @property
    def actor(self) -> str:
        """How the audit log names this caller (never a secret)."""
        return self.principal.actor


def _with_client(
    check: Callable[..., Awaitable[Principal]],
) -> Callable[..., Awaitable[Caller]]:
    """A dependency giving ``check``'s principal together with the client address."""
    import fastapi

    from app.access.dependencies import client_address

    async def dependency(request: Request, principal: Principal = fastapi.Depends(check)) -> Caller:
        return Caller(principal, client_address(request))

    dependency.__name__ = f"{check.__name__}_caller"
    return dependency


def _aliases() -> dict[str, Any]:
    import fastapi

    from app.access import dependencies

    def check(access: Any) -> Callable[..., Awaitable[Principal]]:
        """The very dependency behind a ``*Access`` alias: one place decides the scope,
        and FastAPI runs it once for a route that names both aliases."""
        dependency: Callable[..., Awaitable[Principal]] = get_args(access)[1].dependency
        return dependency

    globals()["Request"] = fastapi.Request  # the dependency's annotation
    return {
        name: Annotated[Caller, fastapi.Depends(_with_client(check(access)))]
        for name, access in (
            ("AuthenticatedCaller", dependencies.Authenticated),
            ("ReadCaller", dependencies.ReadAccess),
            ("OperateCaller", dependencies.OperateAccess),
            ("AdminCaller", dependencies.AdminAccess),
        )
    }


if TYPE_CHECKING:
    from fastapi import Request

    AuthenticatedCaller = Caller
    ReadCaller = Caller
    OperateCaller = Caller
    AdminCaller = Caller
else:

    def __getattr__(name: str) -> object:
        """The aliases are built on first use, so FastAPI is imported by the API only: the
        worker imports the services, and so ``Caller``, and never serves HTTP (idle memory:
        docs/performance.md; ``Ctx`` in app/core/context.py does the same)."""
        if name in ("AuthenticatedCaller", "ReadCaller", "OperateCaller", "AdminCaller"):
            globals().update(_aliases())
            return globals()[name]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
