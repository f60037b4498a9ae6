"""What the one approval flow (``app.approvals.flow``) needs to know about a kind of
work it approves: a mission, a shell rule or a held shell task.

Each domain describes its kind once (``SUBJECT`` in its ``approval`` module) and
keeps its own checks and the step that makes an approval take effect; the flow
around them (step-up, the gate, holding, vetoing, releasing) is shared, so it is
decided in one place (docs/security-model.md, "Approvals: two-person or
one-owner"). The flow never imports the domains: they pass their subject in
(only ``app.runner.held_approvals``, where the kinds meet, names them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import aiosqlite

from app.core.context import AppContext
from app.core.errors import ApiError
from app.events.transaction import Tx

T = TypeVar("T")


@dataclass(frozen=True)
class Names:
    """How the security alerts name one piece of work."""

    #: after "Self-approval held: " / "vetoed: ", e.g. "mission Backup", "shell task 7"
    title: str
    #: after "approved their own ", e.g. "task 7, whose run gets a shell,"
    own: str
    #: after "the held approval by someone of ", e.g. "trigger rule 3"
    of: str


@dataclass(frozen=True)
class Ready(Generic[T]):
    """The work may be approved: the version the approval covers, and what the
    domain's apply step needs that its check found."""

    version: int
    facts: T


@dataclass(frozen=True)
class Grant:
    """An approval taking effect: at once (a second person) or a hold released."""

    target_id: int
    version: int
    approver: str
    comment: str


@dataclass(frozen=True)
class Subject(Generic[T]):
    #: the hold's kind, the audit actions' prefix (``<kind>.approve_held``), the
    #: audit target's prefix (``<kind>:<id>``) and the gate's word for the work
    kind: str
    not_found: Callable[[], ApiError]
    #: the page where a person decides (``app.approvals.links``)
    link: Callable[[int], str]
    #: the work's names for the alerts; None when there is no such work
    names: Callable[[aiosqlite.Connection, int], Awaitable[Names | None]]
    #: who wrote the work (people, not credentials: ``app.auth.owners``); None
    #: when there is no such work
    authors: Callable[[aiosqlite.Connection, int], Awaitable[list[str] | None]]
    #: may it be approved at this version (raises the ApiError the caller sees);
    #: asked again before a hold takes effect (an error voids the hold)
    check: Callable[[AppContext, Tx, int, int | None], Awaitable[Ready[T]]]
    #: the approval takes effect (the domain's own state change, audit and alert)
    apply: Callable[[Tx, Grant, T], Awaitable[None]]
    #: the veto alert's last words, e.g. "it stays proposed."
    after_veto: str
    #: a voided hold's recorded reason; None: the check's error code
    void_reason: str | None = None

    def target(self, target_id: int) -> str:
        return f"{self.kind}:{target_id}"
