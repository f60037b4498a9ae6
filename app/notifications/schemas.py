"""Bodies and views of the notification endpoints."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from app.policies.model import Category, Severity


class ReadAll(BaseModel):
    """``POST /api/notifications/read-all``: optionally only one category."""

    model_config = ConfigDict(extra="forbid")
    category: Category | None = None


class NotificationView(BaseModel):
    id: int
    category: Category
    severity: Severity
    title: str
    body: str
    muted: bool
    read: bool
    read_at: str | None
    webhook_state: str
    webhook_attempts: int
    created_at: str


class ReadAllResult(BaseModel):
    marked_read: int


class NotificationSummary(BaseModel):
    unread: dict[str, int]
    total_unread: int
    muted_unread: int
