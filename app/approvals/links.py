"""Where a person decides on a mission, a rule or a held shell task: the deep link a notification
carries, so that on a phone the decision is one tap from the notifications list."""

from __future__ import annotations


def mission_approval_link(mission_id: int) -> str:
    return f"/ui/missions/{mission_id}#h-decide"


def rule_approval_link(rule_id: int) -> str:
    return f"/ui/rules/{rule_id}#h-approval"


def task_approval_link(task_id: int) -> str:
    return f"/ui/tasks/{task_id}#h-approval"
