"""One-time tickets for the live event stream (F3).

An ``EventSource`` cannot send an ``Authorization`` header, and a credential
in a URL ends up in logs. So an authenticated caller first asks for a ticket
(``POST /api/events/ticket``) and opens the stream with it:

* 32 random bytes (URL-safe), shown once; only its SHA-256 is kept, in memory;
* single use: redeeming marks it used, a second use is refused;
* short-lived: ``event_ticket_ttl_s`` (30 s) on the monotonic clock;
* bound to the caller: the principal (actor and scope) and the client address
  it was issued to;
* bounded: a cap on outstanding tickets per identity and in total, expired
  entries purged on every issue.

``StreamSlots`` caps the number of concurrent streams per identity.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.security.principal import Principal

log = logging.getLogger("mission_control.events")

TICKET_BYTES = 32
MAX_TICKETS = 10_000
MAX_TICKETS_PER_IDENTITY = 16
_TICKET_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


class TicketRefused(Exception):
    """A ticket that cannot be redeemed; ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TooManyTickets(Exception):
    """The caller (or everyone together) holds too many unredeemed tickets."""


@dataclass
class _Entry:
    principal: Principal
    client: str
    expires_at: float
    used: bool = False


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


@dataclass
class TicketBook:
    """In-memory store of outstanding tickets, by hash only."""

    max_tickets: int = MAX_TICKETS
    max_per_identity: int = MAX_TICKETS_PER_IDENTITY
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, _Entry] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._entries)

    def purge(self) -> int:
        """Forget expired tickets (used or not); return how many went."""
        now = self.clock()
        expired = [digest for digest, entry in self._entries.items() if entry.expires_at <= now]
        for digest in expired:
            del self._entries[digest]
        return len(expired)

    def issue(self, principal: Principal, client: str, ttl_s: float) -> str:
        self.purge()
        if len(self._entries) >= self.max_tickets:
            raise TooManyTickets
        mine = sum(
            1
            for entry in self._entries.values()
            if not entry.used and entry.principal.actor == principal.actor
        )
        if mine >= self.max_per_identity:
            raise TooManyTickets
        ticket = secrets.token_urlsafe(TICKET_BYTES)
        self._entries[_digest(ticket)] = _Entry(principal, client, self.clock() + ttl_s)
        return ticket

    def redeem(self, ticket: str | None, client: str) -> Principal:
        """The principal the ticket was issued to; it can never be redeemed again."""
        if not ticket or not _TICKET_RE.match(ticket):
            raise TicketRefused("a valid event ticket is required (POST /api/events/ticket)")
        entry = self._entries.get(_digest(ticket))
        if entry is None:
            raise TicketRefused("unknown event ticket")
        if entry.used:
            log.warning("event ticket replayed", extra={"actor": entry.principal.actor})
            raise TicketRefused("the event ticket was already used")
        entry.used = True  # kept until it expires, so a replay is recognised
        if entry.expires_at <= self.clock():
            raise TicketRefused("the event ticket has expired")
        if not hmac.compare_digest(entry.client.encode(), client.encode()):
            log.warning("event ticket from another address", extra={"actor": entry.principal.actor})
            raise TicketRefused("the event ticket was issued to another client")
        return entry.principal


@dataclass
class StreamSlots:
    """Concurrent streams per identity (``event_streams_per_identity``)."""

    _open: dict[str, int] = field(default_factory=dict)

    def acquire(self, actor: str, limit: int) -> bool:
        current = self._open.get(actor, 0)
        if current >= limit:
            return False
        self._open[actor] = current + 1
        return True

    def release(self, actor: str) -> None:
        remaining = self._open.get(actor, 0) - 1
        if remaining > 0:
            self._open[actor] = remaining
        else:
            self._open.pop(actor, None)

    def count(self, actor: str) -> int:
        return self._open.get(actor, 0)

    def total(self) -> int:
        return sum(self._open.values())
