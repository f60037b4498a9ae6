"""VPN peers over HTTP (scope admin): list, add (after a step-up), revoke.

Every change goes through the root helper (app/vpn/helper.py): the API itself
holds no privilege. A new peer's configuration (with its private key) and QR
code are in the one answer to ``POST /api/vpn/peers`` and nowhere else: not
the database, the audit log, the events, the logs; the helper does not keep the
key on the Pi either (``mc-vpn add --config-once``). Adding and revoking are
audited and raise a security notification.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from app.access.caller import AdminCaller
from app.access.dependencies import AdminAccess
from app.auth.step_up import StepUpProof, consume, step_up
from app.core.context import Ctx
from app.core.errors import ApiError
from app.events.transaction import transaction
from app.security import audit
from app.vpn.helper import NAME_PATTERN, NAME_RULE, HelperError, ask, valid_name
from app.vpn.peers import PeersView, peers_view
from app.vpn.qr import qr_svg

router = APIRouter(prefix="/api/vpn", tags=["vpn"])


def _peer_name(value: str) -> str:
    if not valid_name(value):
        raise ValueError(f"a device name is {NAME_RULE}, such as phone or laptop-anna")
    return value


PeerName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_peer_name)]
PeerNamePath = Annotated[str, Path(pattern=NAME_PATTERN, max_length=31)]

_STATUS = {"exists": 409, "not_found": 404, "bad_name": 422, "helper_unavailable": 503}


class PeerAdd(StepUpProof):
    """The new peer's name, and your password (and code) again: the answer holds
    the peer's private key."""

    name: Annotated[PeerName, Field(description=f"the device's name: {NAME_RULE}")]


class PeerAdded(BaseModel):
    name: str
    address: str
    #: the client configuration, with its private key: shown once, kept nowhere
    config: str
    qr_svg: str


class PeerRevoked(BaseModel):
    name: str


def helper_failure(exc: HelperError) -> ApiError:
    status = _STATUS.get(exc.code, 502)
    details = None
    if exc.code in ("exists", "bad_name"):
        fix = "choose another name" if exc.code == "exists" else f"use {NAME_RULE}"
        details = [{"loc": ["body", "name"], "type": exc.code, "message": f"{exc.message}: {fix}"}]
    return ApiError(status, f"vpn_{exc.code}", exc.message or "the VPN helper failed", details)


@router.get("/peers", response_model=PeersView)
async def get_peers(_: AdminAccess, ctx: Ctx) -> PeersView:
    """Scope admin. Peers with address, last handshake and bytes (never a key)."""
    return await peers_view(ctx.settings)


@router.post("/peers", status_code=201, response_model=PeerAdded)
async def post_peer(body: PeerAdd, caller: AdminCaller, response: Response, ctx: Ctx) -> PeerAdded:
    """Scope admin, browser session with a step-up in the same request (password,
    and the authenticator code when enrolled). The answer is the only copy of the
    new peer's configuration: import it or scan its QR code now."""
    principal, client = caller.principal, caller.client
    await step_up(ctx, caller, StepUpProof(password=body.password, code=body.code))
    response.headers["cache-control"] = "no-store"
    try:
        answer = await ask(ctx.settings.vpn_helper_socket, "add", body.name)
    except HelperError as exc:
        await audit.record(
            ctx.db,
            actor=caller.actor,
            action="vpn.peer_add",
            target=f"vpn-peer:{body.name}",
            client=client,
            outcome="failed",
            summary={"error": exc.code},
        )
        raise helper_failure(exc) from None
    config = str(answer.get("config", ""))
    address = str(answer.get("address", ""))
    async with transaction(ctx, caller.actor, client) as tx:
        await consume(tx.conn, principal)
        await tx.audit("vpn.peer_add", f"vpn-peer:{body.name}", {"address": address})
        await tx.security_alert(
            f"VPN peer added: {body.name}",
            f"{principal.name} added the WireGuard peer {body.name} ({address}) from {client}."
            " If this was not you, revoke it on the VPN page and change your password.",
        )
    return PeerAdded(name=body.name, address=address, config=config, qr_svg=qr_svg(config))


@router.delete("/peers/{name}", response_model=PeerRevoked)
async def delete_peer(name: PeerNamePath, caller: AdminCaller, ctx: Ctx) -> PeerRevoked:
    """Scope admin. The peer can no longer handshake, at once (its session ends)."""
    principal, client = caller.principal, caller.client
    try:
        await ask(ctx.settings.vpn_helper_socket, "revoke", name)
    except HelperError as exc:
        await audit.record(
            ctx.db,
            actor=caller.actor,
            action="vpn.peer_revoke",
            target=f"vpn-peer:{name}",
            client=client,
            outcome="failed",
            summary={"error": exc.code},
        )
        raise helper_failure(exc) from None
    async with transaction(ctx, caller.actor, client) as tx:
        await tx.audit("vpn.peer_revoke", f"vpn-peer:{name}", {})
        await tx.security_alert(
            f"VPN peer revoked: {name}",
            f"{principal.name} revoked the WireGuard peer {name} from {client}.",
        )
    return PeerRevoked(name=name)
