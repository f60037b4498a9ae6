"""Notification policy (F6): what may be muted, quieted or routed.

The ``security`` category can never be muted, quieted or routed away; a
policy that tries is refused with a 422 naming the field.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Category(StrEnum):
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


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("use HH:MM, 24-hour clock")
        return value

    def contains(self, hhmm: str) -> bool:
        if self.start <= self.end:
            return self.start <= hhmm < self.end
        return hhmm >= self.start or hhmm < self.end


class NotificationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    muted_categories: Annotated[list[Category], Field(max_length=16)] = []
    quiet_hours: QuietHours | None = None
    quiet_categories: Annotated[list[Category], Field(max_length=16)] = []
    webhook_categories: Annotated[list[Category], Field(max_length=16)] = list(Category)

    @model_validator(mode="after")
    def _security_stays_loud(self) -> NotificationPolicy:
        if Category.SECURITY in self.muted_categories:
            raise ValueError("the security category cannot be muted")
        if Category.SECURITY in self.quiet_categories:
            raise ValueError("the security category cannot be quieted")
        if Category.SECURITY not in self.webhook_categories:
            raise ValueError("the security category cannot be routed away from the webhook")
        return self

    def is_muted(self, category: Category) -> bool:
        return category != Category.SECURITY and category in self.muted_categories


DEFAULT_POLICY = NotificationPolicy()
