"""Bodies and views of the notification endpoints."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.events.types import Category, Severity


class ReadAll(BaseModel):
    """``POST /api/notifications/read-all``: optionally only one category."""

    model_config = ConfigDict(extra="forbid")
    category: Category | None = None


class DeliveryView(BaseModel):
    """A notification's delivery to one channel (its name, never its URL)."""

    channel: str
    #: pending (waits for next_attempt_at), sent (once) or failed (given up)
    state: str
    attempts: int
    next_attempt_at: str | None
    sent_at: str | None
    #: why the last attempt failed: a short reason, never a URL
    last_error: str | None


class NotificationView(BaseModel):
    id: int
    category: Category
    severity: Severity
    title: str
    body: str
    muted: bool
    read: bool
    read_at: str | None
    webhook_state: str = Field(
        description="sent off the Pi: none (not sent), pending (a channel waits), delivered"
        " (every channel has it), partial (some have it, the others were given up), failed"
        " (no channel has it); each channel's delivery is in deliveries"
    )
    webhook_attempts: int = Field(description="the most attempts of any one channel")
    deliveries: list[DeliveryView] = Field(
        default_factory=list, description="one per channel it is sent to"
    )
    created_at: str
    link: str | None = Field(
        default=None, description="where to act on it: a page of the web UI (a deep link)"
    )


class ReadAllResult(BaseModel):
    marked_read: int


class NotificationSummary(BaseModel):
    unread: dict[str, int]
    total_unread: int
    muted_unread: int


class ChannelTest(BaseModel):
    id: int
    channel: str
    requested_by: str
    requested_at: str
    #: pending (the notifier has not sent it yet), delivered or failed
    state: str
    outcome: str | None
    done_at: str | None


class ChannelView(BaseModel):
    """One channel of the notifier: its name and state, never its URL."""

    name: str
    service: str
    breaker_state: str
    consecutive_failures: int
    breaker_opened_at: str | None
    last_delivered_at: str | None
    last_failed_at: str | None
    last_error: str | None
    last_test: ChannelTest | None


class ChannelsView(BaseModel):
    channels: list[ChannelView]
    #: the notifier's last heartbeat (None: it never ran on this database)
    notifier_seen_at: str | None
    notifier_running: bool
    #: what to fix, when alerts cannot leave the Pi
    warning: str | None
