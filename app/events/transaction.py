"""One write transaction that also records its audit rows, events,
notifications and escalations, and wakes live readers after it commits.

Routers call services; services open a ``transaction`` and use its helpers,
so a state change, its event and its audit record commit together or not at
all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

from app.core.clock import utcnow
from app.core.context import AppContext
from app.escalations.store import insert_escalation
from app.events.store import insert_event
from app.events.types import EventType
from app.notifications.store import any_channel, insert_notification
from app.policies.model import Category, Severity
from app.policies.store import load_notification_policy
from app.security import audit
from app.security.principal import Scope


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
        policy, _ = await load_notification_policy(self.conn)
        muted = policy.is_muted(category)
        # queued for the notifier only while it has a channel (the notifier writes them)
        webhook = (
            not muted and category in policy.webhook_categories and await any_channel(self.conn)
        )
        notification_id = await insert_notification(
            self.conn,
            category=category,
            severity=severity,
            title=title,
            body=body,
            muted=muted,
            webhook=webhook,
            link=link,
        )
        quiet = (
            policy.quiet_hours is not None
            and category in policy.quiet_categories
            and policy.quiet_hours.contains(utcnow().strftime("%H:%M"))
        )
        await self.emit(
            EventType.NOTIFICATION_CREATED,
            "notification",
            notification_id,
            {
                "category": category.value,
                "severity": severity.value,
                "title": title[:200],
                "muted": muted,
                "quiet": quiet,
            },
        )
        return notification_id

    async def escalate(
        self,
        kind: str,
        subject_type: str,
        subject_id: int | None,
        reason: str,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Open an escalation: something needs a human (F21)."""
        escalation_id = await insert_escalation(
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
