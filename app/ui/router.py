"""The web UI: server-rendered pages under ``/`` (login) and ``/ui/...``.

Pages only read: they call the domain services and stores directly and render
HTML. Every change is made by the page's JavaScript through the JSON API with
the session's CSRF token (``X-CSRF-Token``), so the API's validation, scopes,
audit and refusal records apply to the UI unchanged. Every ``/ui/...`` route
needs a login session (``UiSession``); only ``GET /`` and the login page's
assets answer without one (``PUBLIC_ROUTES`` in ``app/main.py``).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup

from app.access.dependencies import SESSION_COOKIE, authenticate
from app.agents import service as agents_service
from app.agents import store as agents_store
from app.agents.schemas import IdentityDiff, IdentityVersion, MemoryView
from app.audit.store import list_records as list_audit_records
from app.auth import service as auth_service
from app.auth import store as auth_store
from app.backup.offsite import last_offsite_copy
from app.backup.service import backups as backup_list
from app.capability.model import Capability, Tool
from app.conversations import service as conversations_service
from app.core.clock import iso, utcnow
from app.core.context import AppContext, Ctx
from app.core.database import Row
from app.core.errors import ApiError
from app.core.pagination import Page, PageParams, Pagination
from app.core.textdiff import unified
from app.escalations import service as escalations_service
from app.escalations import store as escalations_store
from app.events.store import event_dict
from app.events.stream import list_events
from app.health.charts import health_charts
from app.health.details import health_report
from app.health.samples import samples_between
from app.missions import service as missions_service
from app.missions.schemas import MissionStatus
from app.notifications import service as notifications_service
from app.notifications import store as notifications_store
from app.policies import service as policies_service
from app.policies.model import SECURITY_LOCK, Category
from app.rules import service as rules_service
from app.rules.schemas import (
    ACTION_TYPES,
    MAX_FIRINGS_PER_HOUR_CEILING,
    Op,
    RuleTaskStatus,
    TaskPriority,
    TriggerEvent,
    allowed_fields,
)
from app.runner.catalog import profiles_status
from app.runner.prices import model_choices
from app.security.principal import Principal, Scope
from app.tasks import review, review_store
from app.tasks import service as tasks_service
from app.tasks.schemas import Priority, TaskStatus
from app.tasks.waiting import waiting_items
from app.ui import approval as approval_ui
from app.ui import store
from app.ui.auth import UiSession, refuse_page, safe_next
from app.ui.render import ASSETS, PUBLIC_ASSETS, Asset, page, render_html
from app.ui.rule_labels import builder_labels, field_label
from app.vpn.status import read_peer_status

router = APIRouter(include_in_schema=False)

BOARD_COLUMNS: tuple[TaskStatus, ...] = (
    TaskStatus.QUEUED,
    TaskStatus.IN_PROGRESS,
    TaskStatus.BLOCKED,
    TaskStatus.SUCCEEDED,
    TaskStatus.FAILED,
    TaskStatus.CANCELLED,
)
BOARD_PER_COLUMN = 20
DASHBOARD_ROWS = 10
FEED_ROWS = 20
CHART_HOURS = 24


# --- helpers ------------------------------------------------------------------------


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


_LINKS = {
    "agent": "/ui/agents/{}",
    "mission": "/ui/missions/{}",
    "task": "/ui/tasks/{}",
    "conversation": "/ui/runs/{}",
    "rule": "/ui/rules/{}",
    "schedule": "/ui/schedules/{}",
    "escalation": "/ui/escalations#escalation-{}",
}


def subject_link(subject_type: str, subject_id: int | None) -> str | None:
    pattern = _LINKS.get(subject_type)
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


def _asset_response(asset: Asset, version: str | None) -> Response:
    cache = "private, max-age=31536000, immutable" if version == asset.digest else "no-cache"
    return Response(
        asset.body,
        media_type=asset.content_type,
        headers={"cache-control": cache, "etag": f'"{asset.digest}"'},
    )


# --- public: the login page and its assets ---------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def login_page(
    request: Request,
    ctx: Ctx,
    next_path: Annotated[str | None, Query(alias="next", max_length=300)] = None,
) -> Response:
    """Public. The login form; a logged-in browser goes straight to the UI."""
    target = safe_next(next_path)
    if request.cookies.get(SESSION_COOKIE):
        try:
            principal = await authenticate(request, ctx)
        except ApiError:
            principal = None
        if principal is not None and principal.kind == "session":
            return RedirectResponse(target, status_code=303)
    return render_html("login.html", next_path=target)


def _public_asset(name: str) -> Callable[[str | None], Awaitable[Response]]:
    asset = ASSETS[name]

    async def serve(v: Annotated[str | None, Query(max_length=64)] = None) -> Response:
        return _asset_response(asset, v)

    serve.__name__ = "public_asset_" + re.sub(r"\W", "_", name)
    return serve


for _name in PUBLIC_ASSETS:
    router.add_api_route(f"/static/{_name}", _public_asset(_name), methods=["GET"])


@router.get("/ui/static/{name}")
async def ui_asset(
    name: str, _: UiSession, v: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    """The UI's scripts: only for a logged-in session."""
    asset = ASSETS.get(name)
    if asset is None:
        raise ApiError(404, "not_found", "no such file")
    return _asset_response(asset, v)


# --- dashboard ------------------------------------------------------------------------------


@router.get("/ui/", response_class=HTMLResponse)
async def dashboard(request: Request, principal: UiSession, ctx: Ctx) -> HTMLResponse:
    now = utcnow()
    agents, agent_total = await store.agents_today(ctx.db, PageParams(limit=20, offset=0), now)
    runs, run_total = await store.active_runs(ctx.db, PageParams(limit=DASHBOARD_ROWS, offset=0))
    escalations, escalation_total = await store.unresolved_escalations(
        ctx.db, PageParams(limit=DASHBOARD_ROWS, offset=0)
    )
    notifications, unread_total = await notifications_store.list_notifications(
        ctx.db, PageParams(limit=DASHBOARD_ROWS, offset=0), unread=True
    )
    tokens, cost, runs_today = await store.spend_today(ctx.db, now)
    events, _ = await list_events(ctx.db, principal.scope, PageParams(limit=FEED_ROWS, offset=0))
    health = await health_report(ctx)
    return await ui_page(
        request,
        principal,
        ctx,
        "dashboard.html",
        title="Dashboard",
        section="dashboard",
        agents=agents,
        agent_total=agent_total,
        runs=runs,
        run_total=run_total,
        escalations=[escalations_service.escalation_view(r) for r in escalations],
        escalation_total=escalation_total,
        notifications=[notifications_service.notification_view(r) for r in notifications],
        unread_total=unread_total,
        spend={"tokens": tokens, "cost_usd": cost, "runs": runs_today},
        task_counts=await store.task_counts(ctx.db),
        waiting_for_you=await waiting_items(ctx.db),
        events=[event_view(r) for r in events],
        last_event_id=int(events[0]["id"]) if events else 0,
        health=health,
    )


# --- agents ---------------------------------------------------------------------------------


def capabilities(ctx: AppContext, rows: list[Row]) -> dict[int, Capability]:
    """Each agent's capability (the one decision, app/capability/model.py) for badges."""
    return {int(r["id"]): agents_service.capability_of(ctx.settings, r) for r in rows}


@router.get("/ui/agents", response_class=HTMLResponse)
async def agents_page(
    request: Request, principal: UiSession, ctx: Ctx, page_params: Pagination
) -> HTMLResponse:
    rows, total = await store.agents_today(ctx.db, page_params, utcnow())
    return await ui_page(
        request,
        principal,
        ctx,
        "agents.html",
        title="Agents",
        section="agents",
        agents=rows,
        capabilities=capabilities(ctx, rows),
        pager=pager(request, (total, page_params)),
        tools=list(Tool),
        profiles=sorted(agents_service.known_profiles(ctx)),
        runtimes={name: p.runtime for name, p in profiles_status(ctx.settings).profiles},
        models=model_choices(ctx.settings.prices_path),
        defaults=ctx.settings,
    )


@router.get("/ui/agents/{agent_id}", response_class=HTMLResponse)
async def agent_page(
    agent_id: int, request: Request, principal: UiSession, ctx: Ctx
) -> HTMLResponse:
    agent = await or_none(agents_service.get_agent(ctx, agent_id))
    if agent is None:
        return not_found(request, principal, "agent")
    today = await store.agent_today(ctx.db, agent_id, utcnow())
    memory_rows, memory_total = await agents_store.list_memory(
        ctx.db, agent_id, PageParams(limit=10, offset=0)
    )
    tasks, task_total = await tasks_service.list_tasks(
        ctx, PageParams(limit=10, offset=0), status=None, agent_id=agent_id, mission_id=None
    )
    return await ui_page(
        request,
        principal,
        ctx,
        "agent.html",
        title=f"Agent {agent.name}",
        section="agents",
        agent=agent,
        today=today,
        memory=[MemoryView(**dict(r)) for r in memory_rows],
        memory_total=memory_total,
        tasks=tasks,
        task_total=task_total,
    )


@router.get("/ui/agents/{agent_id}/identity", response_class=HTMLResponse)
async def identity_page(
    agent_id: int,
    request: Request,
    principal: UiSession,
    ctx: Ctx,
    page_params: Pagination,
    from_version: Annotated[int | None, Query(alias="from", ge=0)] = None,
    to_version: Annotated[int | None, Query(alias="to", ge=0)] = None,
) -> HTMLResponse:
    agent = await or_none(agents_service.get_agent(ctx, agent_id))
    if agent is None:
        return not_found(request, principal, "agent")
    current = None
    if agent.identity_version:
        row = await agents_store.identity_version(ctx.db, agent_id, agent.identity_version)
        current = IdentityVersion(**dict(row)) if row else None
    rows, total = await agents_store.identity_versions(ctx.db, agent_id, page_params)
    versions = [IdentityVersion(**dict(r)) for r in rows]
    diff = None
    if agent.identity_version >= 1:
        to_v = agent.identity_version if to_version is None else to_version
        from_v = max(to_v - 1, 0) if from_version is None else from_version
        diff = await identity_diff(ctx, agent_id, from_v, to_v)
    return await ui_page(
        request,
        principal,
        ctx,
        "identity.html",
        title=f"Identity of {agent.name}",
        section="agents",
        agent=agent,
        current=current,
        versions=versions,
        pager=pager(request, (total, page_params)),
        diff=diff,
        diff_lines=diff_lines(diff.diff) if diff else [],
    )


async def identity_diff(
    ctx: AppContext, agent_id: int, from_version: int, to_version: int
) -> IdentityDiff | None:
    """A line diff of two identity versions (0 is the empty text), None if one is missing.

    Lines are compared without their line ends, so a last line without a newline
    shows as one changed line rather than being glued to the next."""
    texts: list[str] = []
    for version in (from_version, to_version):
        if version == 0:
            texts.append("")
            continue
        row = await agents_store.identity_version(ctx.db, agent_id, version)
        if row is None:
            return None
        texts.append(str(row["text"]))
    diff = unified(texts[0], texts[1], from_version, to_version)
    return IdentityDiff(from_version=from_version, to_version=to_version, diff=diff)


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


# --- missions -------------------------------------------------------------------------------


def ceilings(ctx: AppContext) -> dict[str, float | int]:
    s = ctx.settings
    return {
        "cost_usd": s.mission_max_cost_usd,
        "steps": s.mission_max_steps,
        "step_minutes": s.mission_max_step_minutes,
        "tokens": s.mission_max_tokens,
    }


@router.get("/ui/missions", response_class=HTMLResponse)
async def missions_page(
    request: Request,
    principal: UiSession,
    ctx: Ctx,
    page_params: Pagination,
    status: Annotated[MissionStatus | None, Query()] = None,
) -> HTMLResponse:
    items, total = await missions_service.list_missions(ctx, page_params, status)
    return await ui_page(
        request,
        principal,
        ctx,
        "missions.html",
        title="Missions",
        section="missions",
        missions=items,
        status=status.value if status else "",
        statuses=[s.value for s in MissionStatus],
        pager=pager(request, (total, page_params)),
    )


@router.get("/ui/missions/new", response_class=HTMLResponse)
async def mission_new_page(request: Request, principal: UiSession, ctx: Ctx) -> HTMLResponse:
    return await ui_page(
        request,
        principal,
        ctx,
        "mission_new.html",
        title="Propose a mission",
        section="missions",
        agents=await store.active_agent_choices(ctx.db),
        ceilings=ceilings(ctx),
    )


@router.get("/ui/missions/{mission_id}", response_class=HTMLResponse)
async def mission_page(
    mission_id: int, request: Request, principal: UiSession, ctx: Ctx
) -> HTMLResponse:
    approval = await approval_ui.mission_context(ctx, principal, mission_id)  # applies a due hold
    mission = await or_none(missions_service.get_mission(ctx, mission_id))
    if mission is None or approval is None:
        return not_found(request, principal, "mission")
    tasks = await store.mission_tasks(ctx.db, mission_id)
    by_step: dict[int, list[Any]] = {}
    for task in tasks:
        by_step.setdefault(int(task["mission_step"] or 0), []).append(task)
    return await ui_page(
        request,
        principal,
        ctx,
        "mission.html",
        title=f"Mission {mission.title}",
        section="missions",
        mission=mission,
        ceilings=ceilings(ctx),
        by_step=by_step,
        agent_names=await store.agent_names(ctx.db),
        **approval,
    )


# --- tasks and runs -------------------------------------------------------------------------


@router.get("/ui/tasks", response_class=HTMLResponse)
async def tasks_page(
    request: Request,
    principal: UiSession,
    ctx: Ctx,
    page_params: Pagination,
    status: Annotated[TaskStatus | None, Query()] = None,
) -> HTMLResponse:
    names = await store.agent_names(ctx.db)
    if status is not None:
        items, total = await tasks_service.list_tasks(
            ctx, page_params, status=status, agent_id=None, mission_id=None
        )
        return await ui_page(
            request,
            principal,
            ctx,
            "tasks_list.html",
            title=f"Tasks: {status.value.replace('_', ' ')}",
            section="tasks",
            tasks=items,
            status=status.value,
            agent_names=names,
            pager=pager(request, (total, page_params)),
        )
    columns = []
    for column in BOARD_COLUMNS:
        items, total = await tasks_service.list_tasks(
            ctx,
            PageParams(limit=BOARD_PER_COLUMN, offset=0),
            status=column,
            agent_id=None,
            mission_id=None,
        )
        columns.append({"status": column.value, "tasks": items, "total": total})
    return await ui_page(
        request,
        principal,
        ctx,
        "tasks.html",
        title="Tasks",
        section="tasks",
        columns=columns,
        agent_names=names,
    )


@router.get("/ui/tasks/new", response_class=HTMLResponse)
async def task_new_page(
    request: Request,
    principal: UiSession,
    ctx: Ctx,
    mission_id: Annotated[int | None, Query(ge=1)] = None,
    mission_step: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    agent_id: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    return await ui_page(
        request,
        principal,
        ctx,
        "task_new.html",
        title="New task",
        section="tasks",
        agents=(agents := await store.active_agent_choices(ctx.db)),
        capabilities=capabilities(ctx, agents),
        missions=await store.open_mission_choices(ctx.db),
        projects=await store.project_choices(ctx.db),
        priorities=[p.value for p in Priority],
        tools=list(Tool),
        preset={"mission_id": mission_id, "mission_step": mission_step, "agent_id": agent_id},
    )


@router.get("/ui/tasks/{task_id}", response_class=HTMLResponse)
async def task_page(
    task_id: int, request: Request, principal: UiSession, ctx: Ctx, page_params: Pagination
) -> HTMLResponse:
    approval = await approval_ui.task_context(ctx, principal, task_id)  # applies a due hold
    task = await or_none(tasks_service.get_task(ctx, task_id))
    if task is None or approval is None:
        return not_found(request, principal, "task")
    runs, total = await conversations_service.list_conversations(
        ctx, page_params, status=None, task_id=task_id
    )
    return await ui_page(
        request,
        principal,
        ctx,
        "task.html",
        title=f"Task {task.title}",
        section="tasks",
        task=task,
        runs=runs,
        pager=pager(request, (total, page_params)),
        agent_names=await store.agent_names(ctx.db),
        reviews=await review.reviews_view(ctx, task_id),
        **approval,
    )


@router.get("/ui/runs/{conversation_id}", response_class=HTMLResponse)
async def run_page(
    conversation_id: int, request: Request, principal: UiSession, ctx: Ctx
) -> HTMLResponse:
    run = await or_none(conversations_service.get_conversation(ctx, conversation_id))
    if run is None:
        return not_found(request, principal, "run")
    task = await or_none(tasks_service.get_task(ctx, run.task_id))
    return await ui_page(
        request,
        principal,
        ctx,
        "run.html",
        title=f"Run {run.id}",
        section="tasks",
        run=run,
        task=task,
        agent_names=await store.agent_names(ctx.db),
        redactions=len(re.findall(r"\[REDACTED:[a-z_]+\]", run.transcript)),
        live_from=await store.run_started_event(ctx.db, run.id),
        verdicts=await review_store.verdicts_for_conversation(ctx.db, run.id),
    )


# --- rules ----------------------------------------------------------------------------------


def rule_builder_context() -> dict[str, Any]:
    return {
        **builder_labels(),
        "events": [e.value for e in TriggerEvent],
        "fields": {
            e.value: [[f, field_label(f)] for f in sorted(allowed_fields(e))] for e in TriggerEvent
        },
        "ops": [o.value for o in Op],
        "action_types": list(ACTION_TYPES),
        "categories": [c.value for c in Category],
        "priorities": [p.value for p in TaskPriority],
        "rule_statuses": [s.value for s in RuleTaskStatus],
        "max_firings": MAX_FIRINGS_PER_HOUR_CEILING,
    }


@router.get("/ui/rules", response_class=HTMLResponse)
async def rules_page(
    request: Request, principal: UiSession, ctx: Ctx, page_params: Pagination
) -> HTMLResponse:
    items, total = await rules_service.list_rules(ctx, page_params, enabled=None, event_type=None)
    return await ui_page(
        request,
        principal,
        ctx,
        "rules.html",
        title="Rules",
        section="rules",
        rules=items,
        pager=pager(request, (total, page_params)),
    )


@router.get("/ui/rules/new", response_class=HTMLResponse)
async def rule_new_page(request: Request, principal: UiSession, ctx: Ctx) -> HTMLResponse:
    if not principal.scope.allows(Scope.ADMIN):
        return await refuse_page(request, ctx, principal, Scope.ADMIN)
    builder = rule_builder_context()
    return await ui_page(
        request,
        principal,
        ctx,
        "rule_new.html",
        title="New rule",
        section="rules",
        builder=builder,
        builder_json=json.dumps(
            {
                "fields": builder["fields"],
                "categories": builder["default_categories"],
                "presets": {p["id"]: p for p in builder["presets"]},
            }
        ),
        agents=await store.agent_names(ctx.db),
    )


@router.get("/ui/rules/{rule_id}", response_class=HTMLResponse)
async def rule_page(
    rule_id: int, request: Request, principal: UiSession, ctx: Ctx, page_params: Pagination
) -> HTMLResponse:
    approval = await approval_ui.rule_context(ctx, principal, rule_id)  # applies a due hold
    rule = await or_none(rules_service.get_rule(ctx, rule_id))
    if rule is None or approval is None:
        return not_found(request, principal, "rule")
    firings, total = await rules_service.list_firings(ctx, rule_id, page_params)
    return await ui_page(
        request,
        principal,
        ctx,
        "rule.html",
        title=f"Rule {rule.name}",
        section="rules",
        rule=rule,
        rule_json=json.dumps({"when": rule.when, "then": rule.then}, indent=2),
        labels=builder_labels(),
        field_label=field_label,
        firings=firings,
        pager=pager(request, (total, page_params)),
        **approval,
    )


# --- notifications and policy ---------------------------------------------------------------


@router.get("/ui/notifications", response_class=HTMLResponse)
async def notifications_page(
    request: Request,
    principal: UiSession,
    ctx: Ctx,
    page_params: Pagination,
    show: Annotated[str | None, Query(pattern=r"^(unread|all)$")] = None,
    category: Annotated[Category | None, Query()] = None,
) -> HTMLResponse:
    unread = None if show == "all" else True
    rows, total = await notifications_store.list_notifications(
        ctx.db,
        page_params,
        unread=unread,
        category=category.value if category else None,
        include_muted=True,
    )
    return await ui_page(
        request,
        principal,
        ctx,
        "notifications.html",
        title="Notifications",
        section="notifications",
        notifications=[notifications_service.notification_view(r) for r in rows],
        summary=await notifications_service.summary(ctx),
        show=show or "unread",
        category=category.value if category else "",
        categories=[c.value for c in Category],
        pager=pager(request, (total, page_params)),
    )


@router.get("/ui/notifications/policy", response_class=HTMLResponse)
async def policy_page(request: Request, principal: UiSession, ctx: Ctx) -> HTMLResponse:
    view = await policies_service.get_notification_policy(ctx)
    return await ui_page(
        request,
        principal,
        ctx,
        "policy.html",
        title="Notification policy",
        section="notifications",
        view=view,
        categories=[c.value for c in Category],
        lock=SECURITY_LOCK,
    )


# --- escalations ----------------------------------------------------------------------------


@router.get("/ui/escalations", response_class=HTMLResponse)
async def escalations_page(
    request: Request,
    principal: UiSession,
    ctx: Ctx,
    page_params: Pagination,
    status: Annotated[
        str | None, Query(pattern=r"^(unresolved|open|acknowledged|resolved|all)$")
    ] = None,
) -> HTMLResponse:
    chosen = status or "unresolved"
    if chosen == "unresolved":
        rows, total = await store.unresolved_escalations(ctx.db, page_params)
    else:
        rows, total = await escalations_store.list_escalations(
            ctx.db, page_params, status=None if chosen == "all" else chosen
        )
    return await ui_page(
        request,
        principal,
        ctx,
        "escalations.html",
        title="Escalations",
        section="escalations",
        escalations=[escalations_service.escalation_view(r) for r in rows],
        summary=await escalations_service.summary(ctx),
        agent_names=await store.agent_names(ctx.db),
        links=_LINKS,
        status=chosen,
        pager=pager(request, (total, page_params)),
    )


# --- audit, health, settings ------------------------------------------------------------------


@router.get("/ui/audit", response_class=HTMLResponse)
async def audit_page(
    request: Request,
    principal: UiSession,
    ctx: Ctx,
    page_params: Pagination,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
) -> HTMLResponse:
    if not principal.scope.allows(Scope.ADMIN):
        return await refuse_page(request, ctx, principal, Scope.ADMIN)
    records = await list_audit_records(ctx.db, page_params, action=action, actor=actor)
    return await ui_page(
        request,
        principal,
        ctx,
        "audit.html",
        title="Audit log",
        section="audit",
        records=records.items,
        action=action or "",
        actor=actor or "",
        pager=pager(request, records),
    )


async def health_chart_views(ctx: AppContext) -> list[dict[str, Any]]:
    """The four 24-hour charts (server-side SVG, app/health/charts.py) of stored samples."""
    end = utcnow()
    start = end - timedelta(hours=CHART_HOURS)
    samples, _ = await samples_between(ctx.db, iso(start), iso(end))
    charts = health_charts(
        samples, start=start, end=end, interval_s=ctx.settings.health_sample_interval_s
    )
    # every text in the SVG is escaped by app/health/charts.py; it has no style attribute
    return [{"chart": c, "svg": Markup(c.svg)} for c in charts]  # noqa: S704


@router.get("/ui/health", response_class=HTMLResponse)
async def health_page(request: Request, principal: UiSession, ctx: Ctx) -> HTMLResponse:
    return await ui_page(
        request,
        principal,
        ctx,
        "health.html",
        title="Health",
        section="health",
        health=await health_report(ctx),
        charts=await health_chart_views(ctx),
        chart_hours=CHART_HOURS,
        sample_interval_s=ctx.settings.health_sample_interval_s,
        sample_keep_days=ctx.settings.health_sample_retention_days,
    )


@router.get("/ui/backups", response_class=HTMLResponse)
async def backups_page(request: Request, principal: UiSession, ctx: Ctx) -> HTMLResponse:
    if not principal.scope.allows(Scope.ADMIN):
        return await refuse_page(request, ctx, principal, Scope.ADMIN)
    settings = ctx.settings
    appliance = settings.listen_uds is not None
    return await ui_page(
        request,
        principal,
        ctx,
        "backups.html",
        title="Backups",
        section="backups",
        backups=await backup_list(ctx),
        folder=str(settings.backups_path.absolute()),
        max_age_hours=settings.monitor_backup_max_age_hours,
        offsite=last_offsite_copy(settings.state_dir, settings.monitor_backup_max_age_hours),
        keep={"daily": settings.backup_keep_daily, "weekly": settings.backup_keep_weekly},
        missionctl=(
            str(settings.release_root / "current" / "venv" / "bin" / "missionctl")
            if appliance
            else ".venv/bin/missionctl"
        ),
        appliance=appliance,
    )


@router.get("/ui/settings", response_class=HTMLResponse)
async def settings_page(
    request: Request, principal: UiSession, ctx: Ctx, page_params: Pagination
) -> HTMLResponse:
    tokens: list[Any] = []
    users: list[Any] = []
    token_pager = user_pager = None
    vpn = None
    if principal.scope.allows(Scope.ADMIN):
        vpn = await asyncio.to_thread(read_peer_status, ctx.settings.vpn_status_path)
        token_rows, token_total = await auth_store.list_tokens(ctx.db, page_params)
        tokens = [auth_service.token_view(r) for r in token_rows]
        token_pager = pager(request, (token_total, page_params))
        user_rows, user_total = await auth_store.list_users(ctx.db, page_params)
        users = [auth_service.user_view(r) for r in user_rows]
        user_pager = pager(request, (user_total, page_params))
    return await ui_page(
        request,
        principal,
        ctx,
        "settings.html",
        title="Settings",
        section="settings",
        tokens=tokens,
        users=users,
        token_pager=token_pager,
        user_pager=user_pager,
        scopes=[s.value for s in Scope],
        vpn=vpn,
    )
