"""The caller's own second factor: enrol (with a QR code), confirm, turn off.

Browser sessions only (a token holder has no authenticator to enrol). Starting
an enrolment and turning the factor off both need a fresh step-up
(``app.auth.step_up``): a stolen session alone can neither lock the owner out
with a factor of its own nor remove theirs. A wrong confirmation code counts
against the login lock-out. The secret and recovery codes are in the answer
once and never again (``app.auth.totp``).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from app.access.caller import AuthenticatedCaller
from app.access.dependencies import Authenticated
from app.auth import lockout, totp
from app.auth.caller_audit import append_as, record_as
from app.auth.schemas import StrictModel
from app.auth.step_up import SecondFactorCode, StepUpProof, consume, step_up
from app.auth.stepped_up import SteppedUp
from app.core.context import Ctx
from app.core.errors import ApiError
from app.core.ratelimit import RateLimiter
from app.security.principal import Principal

router = APIRouter(prefix="/api/auth/totp", tags=["auth"])


class TotpStatus(BaseModel):
    enrolled: bool
    recovery_codes_left: int


class TotpEnrolment(BaseModel):
    secret: str = Field(description="shown once: type it into the app if the QR code fails")
    uri: str
    qr_svg: str = Field(description="the otpauth URI as an inline SVG QR code")


class TotpConfirm(StrictModel):
    code: SecondFactorCode


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(description="shown once; each works once")


def _user_id(principal: Principal) -> int:
    if principal.kind != "session" or principal.user_id is None:
        raise ApiError(
            403,
            "not_a_session",
            "the second factor is managed by a person logged in to the web UI",
        )
    return principal.user_id


@router.get("", response_model=TotpStatus)
async def totp_status(principal: Authenticated, ctx: Ctx) -> TotpStatus:
    """Whether your second factor is on, and how many recovery codes are left."""
    user_id = _user_id(principal)
    async with ctx.db.read() as conn:
        enrolled, left = await totp.status(conn, user_id)
    return TotpStatus(enrolled=enrolled, recovery_codes_left=left)


@router.post("/enrol", response_model=TotpEnrolment)
async def begin(caller: SteppedUp, ctx: Ctx) -> TotpEnrolment:
    """Needs a fresh step-up. A new secret, shown once; not active until confirmed."""
    user_id = _user_id(caller.principal)
    enrolment = await totp.begin_enrolment(ctx, user_id, caller.principal.name)
    await record_as(ctx.db, caller, "auth.totp_enrol")
    return TotpEnrolment(secret=enrolment.secret, uri=enrolment.uri, qr_svg=enrolment.qr_svg)


@router.post("/confirm", response_model=RecoveryCodes)
async def confirm(body: TotpConfirm, caller: AuthenticatedCaller, ctx: Ctx) -> RecoveryCodes:
    """A code from the app turns the factor on; the ten recovery codes, shown once."""
    principal, client = caller.principal, caller.client
    user_id = _user_id(principal)
    wait = await lockout.lockout_wait(ctx, principal.name, True, client)
    if wait > 0:
        raise ApiError(
            429,
            "login_locked",
            "too many failed attempts; try again later",
            headers={"Retry-After": RateLimiter.retry_after_header(wait)},
        )
    codes = await totp.confirm_enrolment(ctx, user_id, body.code)
    if codes is None:
        lockout.failed(ctx, principal.name, client)
        await record_as(ctx.db, caller, "auth.totp_confirm", outcome="refused")
        raise ApiError(
            422,
            "invalid_second_factor",
            "that code does not match",
            [
                {
                    "loc": ["body", "code"],
                    "type": "second_factor",
                    "message": "the code does not match: check the phone's clock and type the"
                    " current 6-digit code",
                }
            ],
        )
    await record_as(ctx.db, caller, "auth.totp_confirm")
    return RecoveryCodes(recovery_codes=codes)


@router.post("/disable", status_code=204)
async def disable(body: StepUpProof, caller: AuthenticatedCaller, ctx: Ctx) -> Response:
    """Needs a step-up in the same request (your password and a current code)."""
    user_id = _user_id(caller.principal)
    await step_up(ctx, caller, body)
    async with ctx.db.write() as conn:
        removed = await totp.remove(conn, user_id)
        await consume(conn, caller.principal)
        await append_as(conn, caller, "auth.totp_disable", outcome="ok" if removed else "noop")
    return Response(status_code=204)
