"""One write transaction that also records its audit rows, events,
notifications and escalations, and wakes live readers after it commits.

Routers call services; services open a ``transaction`` and use its helpers,
so a state change, its event and its audit record commit together or not at
all.

Track, then dispatch: the transaction writes audit rows and events itself; a
notification or an escalation is handed to the sink its domain registered
(``register_fact_sinks``, called once by ``app.wiring``), so this package
imports no domain store. A transaction asked to notify or escalate with no
sink registered raises: nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import aiosqlite

from app.core.context import AppContext
from app.events.store import insert_event
from app.events.types import Category, EventType, Severity
from app.security import audit
from app.security.principal import Scope

#: stores a notification (the policy decides muted / queued / quiet) and emits its event
NotificationSink = Callable[["Tx", Category, Severity, str, str, "str | None"], Awaitable[int]]


class EscalationSink(Protocol):
    """Stores an escalation row in the transaction's connection and returns its id."""

    async def __call__(
        self,
        conn: aiosqlite.Connection,
        *,
        kind: str,
        subject_type: str,
        subject_id: int | None,
        reason: str,
        details: dict[str, Any],
    ) -> int: ...


@dataclass
class _FactSinks:
    notification: NotificationSink | None = None
    escalation: EscalationSink | None = None


_SINKS = _FactSinks()


def register_fact_sinks(*, notification: NotificationSink, escalation: EscalationSink) -> None:
    """The notifications and escalations domains take the facts they act on."""
    _SINKS.notification = notification
    _SINKS.escalation = escalation


class SinkMissing(RuntimeError):
    """A fact with nowhere to go: the process was built without ``app.wiring``."""


class Tx:
    def __init__(self, conn: aiosqlite.Connection, actor: str, client: str) -> None:
        self.conn = conn
        self.actor = actor
        self.client = client
        self.last_event_id = 0

    async def audit(
        self,
        action: str,
        target: str = "",
        summary: dict[str, Any] | None = None,
        outcome: str = "ok",
    ) -> int:
        return await audit.append(
            self.conn,
            actor=self.actor,
            action=action,
            target=target,
            client=self.client,
            outcome=outcome,
            summary=summary,
        )

    async def emit(
        self,
        event_type: EventType,
        subject_type: str,
        subject_id: int | None,
        payload: dict[str, Any] | None = None,
        *,
        min_scope: Scope = Scope.READ,
        rule_depth: int = 0,
    ) -> int:
        event_id = await insert_event(
            self.conn,
            event_type=event_type,
            subject_type=subject_type,
            subject_id=subject_id,
            actor=self.actor,
            payload=payload or {},
            min_scope=min_scope,
            rule_depth=rule_depth,
        )
        self.last_event_id = max(self.last_event_id, event_id)
        return event_id

    async def notify(
        self,
        category: Category,
        severity: Severity,
        title: str,
        body: str = "",
        *,
        link: str | None = None,
    ) -> int:
        """Store a notification; the policy may mute it, but never a security one.
        ``link``: the UI page where a person acts on it (a local ``/ui/`` path)."""
        if link is not None and not link.startswith("/ui/"):
            raise ValueError("a notification links to a page of the web UI only")
        sink = _SINKS.notification
        if sink is None:
            raise SinkMissing("no notification sink registered (app.wiring.build_context)")
        return await sink(self, category, severity, title, body, link)

    async def escalate(
        self,
        kind: str,
        subject_type: str,
        subject_id: int | None,
        reason: str,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Open an escalation: something needs a human (F21)."""
        sink = _SINKS.escalation
        if sink is None:
            raise SinkMissing("no escalation sink registered (app.wiring.build_context)")
        escalation_id = await sink(
            self.conn,
            kind=kind,
            subject_type=subject_type,
            subject_id=subject_id,
            reason=reason,
            details=details or {},
        )
        await self.emit(
            EventType.ESCALATION_OPENED,
            "escalation",
            escalation_id,
            {
                "kind": kind,
                "subject_type": subject_type,
                "subject_id": subject_id,
                "reason": reason,
            },
            min_scope=Scope.OPERATE,
        )
        await self.notify(Category.ESCALATION, Severity.WARNING, f"Needs a human: {kind}", reason)
        return escalation_id

    async def security_alert(self, title: str, body: str, *, link: str | None = None) -> int:
        """A security notification: never mutable, always on the live feed."""
        await self.emit(EventType.SECURITY_ALERT, "security", None, {"title": title})
        return await self.notify(Category.SECURITY, Severity.CRITICAL, title, body, link=link)


@asynccontextmanager
async def transaction(ctx: AppContext, actor: str, client: str = "") -> AsyncIterator[Tx]:
    async with ctx.db.write() as conn:
        tx = Tx(conn, actor, client)
        yield tx
    if tx.last_event_id:
        ctx.bus.publish(tx.last_event_id)
