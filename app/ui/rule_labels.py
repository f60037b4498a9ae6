"""Human words for the rule builder: events, fields and operators, the category a
notification gets by default, and the presets. The stored rule keeps the exact
names of its schema (``app/rules/schemas.py``); only the form speaks English."""

from __future__ import annotations

from typing import Any

from app.events.types import Category
from app.rules.schemas import Op, TriggerEvent

EVENT_LABELS: dict[str, str] = {
    "agent.created": "An agent is created",
    "agent.updated": "An agent's settings change",
    "agent.status_changed": "An agent is paused, resumed or retired",
    "agent.identity_changed": "An agent's identity (system prompt) changes",
    "agent.deleted": "An agent is retired for good",
    "memory.added": "A memory entry is added to an agent",
    "project.created": "A project is created",
    "project.updated": "A project changes",
    "project.deleted": "A project is deleted",
    "mission.proposed": "A mission is proposed",
    "mission.approved": "A mission is approved",
    "mission.rejected": "A mission is rejected",
    "mission.started": "A mission starts",
    "mission.succeeded": "A mission succeeds",
    "mission.failed": "A mission fails",
    "mission.cancelled": "A mission is cancelled",
    "task.created": "A task is created",
    "task.updated": "A task is edited",
    "task.status_changed": "A task changes status (finishes, fails, is cancelled…)",
    "task.refused": "A task is refused by its pre-flight checks",
    "conversation.queued": "An agent run is queued",
    "conversation.started": "An agent run starts",
    "conversation.succeeded": "An agent run succeeds",
    "conversation.failed": "An agent run fails",
    "conversation.cancelled": "An agent run is cancelled",
    "policy.changed": "The notification policy changes",
    "escalation.opened": "Something needs a human (an escalation opens)",
    "escalation.acknowledged": "An escalation is acknowledged",
    "escalation.resolved": "An escalation is resolved",
    "runner.circuit_opened": "An agent command keeps failing and is paused",
    "runner.circuit_closed": "A paused agent command works again",
}

FIELD_LABELS: dict[str, str] = {
    "subject_id": "its id",
    "actor": "who did it",
    "payload.title": "title",
    "payload.agent_id": "agent (id)",
    "payload.priority": "priority",
    "payload.mission_id": "mission (id)",
    "payload.mission_step": "mission step",
    "payload.project_id": "project (id)",
    "payload.from": "status before",
    "payload.to": "new status",
    "payload.name": "name",
    "payload.status": "status",
    "payload.previous": "status before",
    "payload.identity_version": "identity version",
    "payload.steps": "number of steps",
    "payload.task_id": "task (id)",
    "payload.reason": "reason",
    "payload.kind": "kind",
    "payload.subject_type": "what it is about",
    "payload.subject_id": "id of what it is about",
    "payload.by": "by whom",
    "payload.document_id": "document (id)",
    "payload.profile": "command profile",
    "payload.memory_id": "memory entry (id)",
    "payload.version": "version",
    "payload.changed": "anything changed",
}

OP_LABELS: dict[str, str] = {
    "eq": "is",
    "ne": "is not",
    "in": "is one of",
    "not_in": "is none of",
    "gt": "is more than",
    "lt": "is less than",
    "contains": "contains",
}

_CATEGORY_BY_PREFIX: dict[str, Category] = {
    "task": Category.TASK,
    "mission": Category.MISSION,
    "conversation": Category.RUNNER,
    "runner": Category.RUNNER,
    "escalation": Category.ESCALATION,
}


def default_category(event: str) -> str:
    """The category a notification about ``event`` gets unless the owner picks
    another: never ``security``, which can be neither muted nor quieted."""
    return _CATEGORY_BY_PREFIX.get(event.split(".", 1)[0], Category.SYSTEM).value


def event_label(event: str) -> str:
    return EVENT_LABELS.get(event, event.replace(".", ": ").replace("_", " "))


def field_label(name: str) -> str:
    return FIELD_LABELS.get(name, name.removeprefix("payload.").replace("_", " "))


#: ready-made rules the builder fills in (the owner still reviews and creates them)
PRESETS: list[dict[str, Any]] = [
    {
        "id": "task-failed",
        "label": "Notify me when a task fails",
        "name": "Tell me when a task fails",
        "on": "task.status_changed",
        "when": [{"field": "payload.to", "op": "eq", "value": "failed"}],
        "then": {
            "type": "notify",
            "category": "task",
            "severity": "warning",
            "title": "Task {subject_id} failed",
            "body": "Open the task to see its last run.",
        },
    },
    {
        "id": "review-finished",
        "label": "Review every finished task",
        "name": "Review every finished task",
        "on": "task.status_changed",
        "when": [{"field": "payload.to", "op": "eq", "value": "succeeded"}],
        "then": {
            "type": "open_escalation",
            "kind": "review_task",
            "reason": "Task {subject_id} finished: review its result",
        },
    },
]


def builder_labels() -> dict[str, Any]:
    events = [e.value for e in TriggerEvent]
    return {
        "event_labels": {e: event_label(e) for e in events},
        "op_labels": {o.value: OP_LABELS.get(o.value, o.value) for o in Op},
        "default_categories": {e: default_category(e) for e in events},
        "presets": PRESETS,
    }
