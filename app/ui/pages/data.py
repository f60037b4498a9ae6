"""The pages of the data that enters an agent's prompt beside its identity: an
agent's memory versions, the projects and their documents (listed with who added
each and when, removable by an admin, versioned with the identity's diff;
docs/security-model.md, "Memory and documents"). Pages only read; every change
goes through the JSON API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.agents import data_versions
from app.agents import service as agents_service
from app.core.context import AppContext, Ctx
from app.core.pagination import PageParams, Pagination
from app.projects import service as projects_service
from app.projects import store as projects_store
from app.projects.schemas import DocumentView, ProjectView
from app.ui.auth import UiSession
from app.ui.page_kit import diff_lines, not_found, or_none, pager, ui_page

router = APIRouter(include_in_schema=False)

FromVersion = Annotated[int | None, Query(alias="from", ge=0)]
ToVersion = Annotated[int | None, Query(alias="to", ge=0)]


async def versions_context(
    request: Request,
    ctx: AppContext,
    subject: data_versions.Subject,
    subject_id: int,
    page_params: PageParams,
    from_version: int | None,
    to_version: int | None,
) -> dict[str, Any]:
    """The version list and one diff (by default: what the latest version changed)."""
    items, total = await data_versions.versions(ctx.db, subject, subject_id, page_params)
    latest = await data_versions.latest(ctx.db, subject, subject_id)
    diff = None
    if latest:
        to_v = latest if to_version is None else to_version
        from_v = max(to_v - 1, 0) if from_version is None else from_version
        diff = await or_none(data_versions.diff(ctx.db, subject, subject_id, from_v, to_v))
    return {
        "versions": items,
        "latest": latest,
        "pager": pager(request, (total, page_params)),
        "diff": diff,
        "diff_lines": diff_lines(diff.diff) if diff else [],
    }


@router.get("/ui/agents/{agent_id}/memory", response_class=HTMLResponse)
async def memory_versions_page(
    agent_id: int,
    request: Request,
    principal: UiSession,
    ctx: Ctx,
    page_params: Pagination,
    from_version: FromVersion = None,
    to_version: ToVersion = None,
) -> HTMLResponse:
    agent = await or_none(agents_service.get_agent(ctx, agent_id))
    if agent is None:
        return not_found(request, principal, "agent")
    return await ui_page(
        request,
        principal,
        ctx,
        "data_versions.html",
        title=f"Memory versions of {agent.name}",
        section="agents",
        back=(f"/ui/agents/{agent.id}", f"Agent {agent.name}"),
        what="memory",
        **await versions_context(
            request, ctx, data_versions.MEMORY, agent_id, page_params, from_version, to_version
        ),
    )


@router.get("/ui/projects", response_class=HTMLResponse)
async def projects_page(
    request: Request, principal: UiSession, ctx: Ctx, page_params: Pagination
) -> HTMLResponse:
    rows, total = await projects_store.list_projects(ctx.db, page_params)
    return await ui_page(
        request,
        principal,
        ctx,
        "projects.html",
        title="Projects",
        section="projects",
        projects=[ProjectView(**dict(r)) for r in rows],
        pager=pager(request, (total, page_params)),
    )


@router.get("/ui/projects/{project_id}", response_class=HTMLResponse)
async def project_page(
    project_id: int,
    request: Request,
    principal: UiSession,
    ctx: Ctx,
    page_params: Pagination,
    from_version: FromVersion = None,
    to_version: ToVersion = None,
) -> HTMLResponse:
    project = await or_none(projects_service.get_project(ctx, project_id))
    if project is None:
        return not_found(request, principal, "project")
    documents, document_total = await projects_store.list_documents(
        ctx.db, project_id, PageParams(limit=200, offset=0)
    )
    return await ui_page(
        request,
        principal,
        ctx,
        "project.html",
        title=f"Project {project.name}",
        section="projects",
        project=project,
        documents=[DocumentView(**dict(r)) for r in documents],
        document_total=document_total,
        shell_readers=await shell_reader_names(ctx, project_id),
        what="documents",
        **await versions_context(
            request, ctx, data_versions.DOCUMENTS, project_id, page_params, from_version, to_version
        ),
    )


async def shell_reader_names(ctx: AppContext, project_id: int) -> list[str]:
    """The agents with a shell whose prompts this project's documents reach."""
    from app.agents.shell_readers import shell_agents

    rows = await projects_store.shell_agent_rows(ctx.db, project_id)
    shell = set(shell_agents(ctx, rows))
    return [str(row["name"]) for row in rows if int(row["id"]) in shell]
