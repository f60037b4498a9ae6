"""The composition root of a process: the one place that builds the shared
context and connects the write transaction to the domains that act on its facts
(notifications, escalations). Every process (API, worker, monitor, support
bundle) builds its context here, so no fact is written without its sink."""

from __future__ import annotations

from app.core.context import AppContext
from app.core.database import Database
from app.core.settings import Settings
from app.escalations.record import record_escalation
from app.events.transaction import register_fact_sinks
from app.notifications.record import record_notification


def connect_fact_sinks() -> None:
    register_fact_sinks(notification=record_notification, escalation=record_escalation)


def build_context(settings: Settings, db: Database, server_key: bytes) -> AppContext:
    connect_fact_sinks()
    return AppContext.build(settings, db, server_key)
