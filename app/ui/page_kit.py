"""What every page shares: ``ui_page`` (the page with the header's counts and the
change-your-password request), the pager, the not-found page, the event feed's
lines and links, the capability badges and the diff lines.

Pages only read: they call the domain services and stores directly and render
HTML; no page calls another router (docs/ui.md, "How a page works").
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from app.agents import service as agents_service
from app.capability.model import Capability
from app.core.context import AppContext
from app.core.database import Row
from app.core.errors import ApiError
from app.core.pagination import Page, PageParams
from app.escalations import store as escalations_store
from app.events.store import event_dict
from app.notifications import store as notifications_store
from app.security.principal import Principal
from app.ui import store
from app.ui.render import page


def pager(request: Request, result: Page[Any] | tuple[int, PageParams]) -> dict[str, Any]:
    """Previous / next links that keep the page's other filters."""
    if isinstance(result, Page):
        total, limit, offset = result.total, result.limit, result.offset
    else:
        total, params = result
        limit, offset = params.limit, params.offset
    query = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit")}
    if limit != 50:
        query["limit"] = str(limit)

    def link(new_offset: int) -> str:
        params = dict(query)
        if new_offset:
            params["offset"] = str(new_offset)
        encoded = urlencode(params)
        return request.url.path + ("?" + encoded if encoded else "")

    first = offset + 1 if total else 0
    last = min(offset + limit, total)
    return {
        "total": total,
        "first": first,
        "last": last,
        "prev_url": link(max(offset - limit, 0)) if offset > 0 else None,
        "next_url": link(offset + limit) if offset + limit < total else None,
    }


def not_found(request: Request, principal: Principal, what: str) -> HTMLResponse:
    return page(
        request,
        principal,
        "not_found.html",
        title="Not found",
        section="",
        status_code=404,
        what=what,
    )


async def or_none(call: Awaitable[Any]) -> Any:
    """The result, or None when the service says 404."""
    try:
        return await call
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def event_view(row: Any) -> dict[str, Any]:
    event = event_dict(row)
    event["summary"] = event_summary(event)
    event["link"] = subject_link(event["subject_type"], event["subject_id"])
    return event


def event_summary(event: dict[str, Any]) -> str:
    payload = event.get("payload") or {}
    parts: list[str] = []
    for key in ("title", "name", "kind", "status", "reason"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            parts.append(value[:120])
            break
    if "from" in payload and "to" in payload:
        parts.append(f"{payload['from']} → {payload['to']}")
    return " · ".join(parts)


SUBJECT_LINKS = {
    "agent": "/ui/agents/{}",
    "mission": "/ui/missions/{}",
    "task": "/ui/tasks/{}",
    "conversation": "/ui/runs/{}",
    "rule": "/ui/rules/{}",
    "schedule": "/ui/schedules/{}",
    "escalation": "/ui/escalations#escalation-{}",
}


def subject_link(subject_type: str, subject_id: int | None) -> str | None:
    pattern = SUBJECT_LINKS.get(subject_type)
    return pattern.format(subject_id) if pattern and subject_id is not None else None


async def nav_counts(ctx: AppContext) -> dict[str, int]:
    unread = await notifications_store.unread_by_category(ctx.db)
    counts = await escalations_store.counts_by_status(ctx.db)
    return {
        "unread": sum(unread.values()),
        "escalations": counts.get("open", 0) + counts.get("acknowledged", 0),
    }


async def ui_page(
    request: Request,
    principal: Principal,
    ctx: AppContext,
    template: str,
    *,
    title: str,
    section: str,
    **context: Any,
) -> HTMLResponse:
    return page(
        request,
        principal,
        template,
        title=title,
        section=section,
        nav=await nav_counts(ctx),
        password_unchanged=await store.password_unchanged(ctx.db, principal.user_id),
        **context,
    )


def capabilities(ctx: AppContext, rows: list[Row]) -> dict[int, Capability]:
    """Each agent's capability (the one decision, app/capability/model.py) for badges."""
    return {int(r["id"]): agents_service.capability_of(ctx.settings, r) for r in rows}


def diff_lines(text: str) -> list[tuple[str, str]]:
    """Unified diff lines with a class: add, del, hunk or same."""
    lines: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        elif line.startswith("@@"):
            kind = "hunk"
        else:
            kind = "same"
        lines.append((kind, line))
    return lines
