"""The fixed vocabulary of facts: event types (rules may listen only to these), and the
category and severity of a notification."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    AGENT_CREATED = "agent.created"
    AGENT_UPDATED = "agent.updated"
    AGENT_STATUS_CHANGED = "agent.status_changed"
    AGENT_IDENTITY_CHANGED = "agent.identity_changed"
    AGENT_DELETED = "agent.deleted"
    MEMORY_ADDED = "memory.added"
    PROJECT_CREATED = "project.created"
    PROJECT_UPDATED = "project.updated"
    PROJECT_DELETED = "project.deleted"
    MISSION_PROPOSED = "mission.proposed"
    MISSION_APPROVED = "mission.approved"
    MISSION_REJECTED = "mission.rejected"
    MISSION_STARTED = "mission.started"
    MISSION_SUCCEEDED = "mission.succeeded"
    MISSION_FAILED = "mission.failed"
    MISSION_CANCELLED = "mission.cancelled"
    TASK_CREATED = "task.created"
    TASK_UPDATED = "task.updated"
    TASK_STATUS_CHANGED = "task.status_changed"
    TASK_REFUSED = "task.refused"
    #: the review gate (docs/missions.md): a cycle opened, a verdict given
    TASK_REVIEW_REQUESTED = "task.review_requested"
    TASK_REVIEW_VERDICT = "task.review_verdict"
    CONVERSATION_QUEUED = "conversation.queued"
    CONVERSATION_STARTED = "conversation.started"
    CONVERSATION_SUCCEEDED = "conversation.succeeded"
    CONVERSATION_FAILED = "conversation.failed"
    CONVERSATION_CANCELLED = "conversation.cancelled"
    #: a run's live output (the agent's messages and tool calls), batched
    CONVERSATION_OUTPUT = "conversation.output"
    SCHEDULE_CREATED = "schedule.created"
    SCHEDULE_UPDATED = "schedule.updated"
    SCHEDULE_FIRED = "schedule.fired"
    RULE_CREATED = "rule.created"
    RULE_UPDATED = "rule.updated"
    RULE_APPROVED = "rule.approved"
    RULE_FIRED = "rule.fired"
    RULE_BLOCKED = "rule.blocked"
    POLICY_CHANGED = "policy.changed"
    NOTIFICATION_CREATED = "notification.created"
    ESCALATION_OPENED = "escalation.opened"
    ESCALATION_ACKNOWLEDGED = "escalation.acknowledged"
    ESCALATION_RESOLVED = "escalation.resolved"
    RUNNER_CIRCUIT_OPENED = "runner.circuit_opened"
    RUNNER_CIRCUIT_CLOSED = "runner.circuit_closed"
    SECURITY_ALERT = "security.alert"


class Category(StrEnum):
    """What a notification is about; the notification policy (app/policies) mutes,
    quiets and routes by category, never ``security``."""

    SECURITY = "security"
    MISSION = "mission"
    TASK = "task"
    RUNNER = "runner"
    RULE = "rule"
    ESCALATION = "escalation"
    SYSTEM = "system"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"
