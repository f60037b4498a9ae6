"""The one place that decides who may approve a mission or a shell rule.

Two modes (docs/security-model.md, "One-owner approval"):

* **two-person** (the default whenever more than one active admin exists):
  the approver is a person logged in to the web UI who is not an author of the
  work, by any of their credentials (``app.auth.owners``). What it defends
  against: one stolen credential (a token or a session) cannot both propose
  and approve.
* **one-owner** (only one active admin exists, or ``MC_APPROVAL_ONE_OWNER``
  is set on the Pi): that admin may also approve their own work, but only from
  a browser session with a fresh step-up (password again, plus TOTP when
  enrolled: ``app.auth.step_up``), and the approval is *held* for
  ``MC_APPROVAL_COOLING_OFF_SECONDS``, announced at once as a security
  notification, and can be vetoed by any admin until it takes effect
  (``app.approvals.held``). A stolen session or token alone therefore still
  cannot start work: the session lacks the password, a token is refused, and
  the owner hears of the attempt with time to veto it.

API tokens never approve, in either mode; an author that cannot be traced to a
person (a token without an owner) makes the work unapprovable (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import aiosqlite

from app.auth import step_up
from app.auth.owners import shares_a_human
from app.auth.store import count_admins
from app.core.context import AppContext
from app.security.principal import Principal, Scope


class Mode(StrEnum):
    TWO_PERSON = "two_person"
    ONE_OWNER = "one_owner"


@dataclass(frozen=True)
class ModeInfo:
    mode: Mode
    admins: int
    #: why this mode applies, in words for the UI
    why: str


class Outcome(StrEnum):
    APPROVE = "approve"  # a second person: takes effect now
    HOLD = "hold"  # a one-owner self-approval: held for the cooling-off period
    REFUSE = "refuse"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    mode: ModeInfo
    #: the refusal's error code and message (403), when refused
    code: str = ""
    message: str = ""


async def approval_mode(conn: aiosqlite.Connection, ctx: AppContext) -> ModeInfo:
    admins = await count_admins(conn)
    if ctx.settings.approval_one_owner:
        return ModeInfo(
            Mode.ONE_OWNER,
            admins,
            "one-owner approval is turned on for this Pi (MC_APPROVAL_ONE_OWNER)",
        )
    if admins <= 1:
        return ModeInfo(
            Mode.ONE_OWNER,
            admins,
            "there is only one admin, so nobody else could approve",
        )
    return ModeInfo(
        Mode.TWO_PERSON,
        admins,
        f"there are {admins} admins, so another person approves",
    )


def _refuse(mode: ModeInfo, code: str, message: str) -> Verdict:
    return Verdict(Outcome.REFUSE, mode, code, message)


async def decide(
    ctx: AppContext,
    conn: aiosqlite.Connection,
    principal: Principal,
    authors: Iterable[str],
    *,
    what: str,
) -> Verdict:
    """May ``principal`` approve work written by ``authors`` (``what``: "mission"
    or "rule", for the messages)? Read-only: the caller audits a refusal,
    records a hold and uses up the step-up."""
    mode = await approval_mode(conn, ctx)
    if principal.kind != "session" or not principal.is_human:
        return _refuse(
            mode,
            "approval_needs_human",
            f"a {what} is approved by a person logged in to the web UI, never by an API token"
            " or automation",
        )
    why = await shares_a_human(conn, principal, authors)
    if why is None:
        return Verdict(Outcome.APPROVE, mode)
    if why != "same_human":
        return _refuse(
            mode,
            f"{'proposer' if what == 'mission' else 'author'}_unknown",
            f"the {what} was written with a token that has no owning user, so no second person"
            " can be shown; write it again from a session or with an owned token",
        )
    if mode.mode is Mode.TWO_PERSON:
        return _refuse(
            mode,
            "self_approval",
            f"you wrote this {what}, so another person must approve it, with any of their"
            f" credentials (two-person rule: {mode.why}); ask another admin",
        )
    if principal.scope is not Scope.ADMIN:
        return _refuse(
            mode,
            "self_approval",
            f"only an admin may approve their own {what} (one-owner approval); ask an admin",
        )
    if not await step_up.is_fresh(ctx, principal):
        return _refuse(
            mode,
            "step_up_required",
            f"approving your own {what} needs your password again (and your authenticator code"
            " when you use one): it is then held for the cooling-off period",
        )
    return Verdict(Outcome.HOLD, mode)
