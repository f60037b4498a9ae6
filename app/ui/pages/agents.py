"""The agents pages: the list (with the create form), one agent, and its identity
with the version history and a diff between any two versions.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.agents import service as agents_service
from app.agents import store as agents_store
from app.agents.schemas import IdentityDiff, IdentityVersion, MemoryView
from app.capability.model import Tool
from app.core.clock import utcnow
from app.core.context import AppContext, Ctx
from app.core.pagination import PageParams, Pagination
from app.core.textdiff import unified
from app.profiles.catalog import profiles_status
from app.profiles.prices import model_choices
from app.tasks import service as tasks_service
from app.ui import store
from app.ui.auth import UiSession
from app.ui.page_kit import capabilities, diff_lines, not_found, or_none, pager, ui_page

router = APIRouter(include_in_schema=False)


@router.get("/ui/agents", response_class=HTMLResponse)
async def agents_page(
    request: Request, principal: UiSession, ctx: Ctx, page_params: Pagination
) -> HTMLResponse:
    rows, total = await store.agents_today(ctx.db, page_params, utcnow())
    # the form offers what the worker would load: nothing when it refuses the file
    # (the health page says why), where the API answers 503 profiles_refused
    host_profiles = profiles_status(ctx.settings).profiles
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
        profiles=[name for name, _ in host_profiles],
        runtimes={name: p.runtime for name, p in host_profiles},
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
