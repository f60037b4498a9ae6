"""The composition root of a process: the one place that builds the shared
context and connects what lower layers hand upwards: the write transaction's
facts to the domains that act on them (notifications, escalations), and a
cancelled mission's open work to the task domain. Every process (API, worker,
monitor, support bundle) builds its context here, so no fact is written without
its sink and no mission is cancelled without its tasks."""

from __future__ import annotations

from app.core.context import AppContext
from app.core.database import Database
from app.core.settings import Settings
from app.escalations.store import insert_escalation
from app.events.transaction import register_fact_sinks
from app.missions.service import register_open_work_canceller
from app.notifications.record import record_notification
from app.tasks.service import cancel_mission_tasks


def connect_domains() -> None:
    register_fact_sinks(notification=record_notification, escalation=insert_escalation)
    register_open_work_canceller(cancel_mission_tasks)


def build_context(settings: Settings, db: Database, server_key: bytes) -> AppContext:
    connect_domains()
    return AppContext.build(settings, db, server_key)
