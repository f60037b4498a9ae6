"""Notification policy (F6): what may be muted, quieted or routed.

The ``security`` category can never be muted, quieted or routed away; a
policy that tries is refused with a 422 naming the field.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.events.types import Category

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


# The fields of a policy that may never include or exclude ``security``, with
# the reason a violation is refused. Used by the model and by the policy
# service, which names the offending field in its 422 and records the attempt.
SECURITY_LOCK: dict[str, str] = {
    "muted_categories": "the security category cannot be muted",
    "quiet_categories": "the security category cannot be quieted",
    "webhook_categories": "the security category cannot be kept from your notification channels",
}


class NotificationPolicyFields(BaseModel):
    """The shape of a notification policy, without the security lock."""

    model_config = ConfigDict(extra="forbid")

    muted_categories: Annotated[list[Category], Field(max_length=16)] = []
    quiet_hours: QuietHours | None = None
    quiet_categories: Annotated[list[Category], Field(max_length=16)] = []
    webhook_categories: Annotated[list[Category], Field(max_length=16)] = list(Category)

    def security_lock_violations(self) -> dict[str, str]:
        """Field name -> reason, for every field that would silence security."""
        found: dict[str, str] = {}
        if Category.SECURITY in self.muted_categories:
            found["muted_categories"] = SECURITY_LOCK["muted_categories"]
        if Category.SECURITY in self.quiet_categories:
            found["quiet_categories"] = SECURITY_LOCK["quiet_categories"]
        if Category.SECURITY not in self.webhook_categories:
            found["webhook_categories"] = SECURITY_LOCK["webhook_categories"]
        return found


class NotificationPolicy(NotificationPolicyFields):
    """A stored, enforced notification policy: ``security`` always stays loud."""

    @model_validator(mode="after")
    def _security_stays_loud(self) -> NotificationPolicy:
        violations = self.security_lock_violations()
        if violations:
            raise ValueError("; ".join(violations.values()))
        return self

    def is_muted(self, category: Category) -> bool:
        return category != Category.SECURITY and category in self.muted_categories


DEFAULT_POLICY = NotificationPolicy()
