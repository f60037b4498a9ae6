"""HTTP endpoints of projects and their context documents."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.access.caller import AdminCaller, OperateCaller
from app.access.dependencies import ReadAccess
from app.agents import data_versions
from app.agents.data_versions import DataDiff, DataVersion
from app.core.context import Ctx
from app.core.ids import MAX_ID
from app.core.pagination import Page, Pagination
from app.projects import service, store
from app.projects.schemas import (
    DocumentCreate,
    DocumentView,
    ProjectCreate,
    ProjectUpdate,
    ProjectView,
)

router = APIRouter(prefix="/api/projects", tags=["projects"])

#: bounded like every id, so a huge number is a 422, never an SQLite overflow (a 500)
ProjectId = Annotated[int, Path(ge=1, le=MAX_ID)]
DocumentId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("", response_model=Page[ProjectView])
async def list_projects(_: ReadAccess, page: Pagination, ctx: Ctx) -> Page[ProjectView]:
    rows, total = await store.list_projects(ctx.db, page)
    return Page[ProjectView].build([ProjectView(**dict(r)) for r in rows], total, page)


@router.post("", status_code=201, response_model=ProjectView)
async def create_project(body: ProjectCreate, caller: OperateCaller, ctx: Ctx) -> ProjectView:
    return await service.create_project(ctx, body, caller)


@router.get("/{project_id}", response_model=ProjectView)
async def get_project(project_id: ProjectId, _: ReadAccess, ctx: Ctx) -> ProjectView:
    return await service.get_project(ctx, project_id)


@router.patch("/{project_id}", response_model=ProjectView)
async def update_project(
    project_id: ProjectId, body: ProjectUpdate, caller: OperateCaller, ctx: Ctx
) -> ProjectView:
    return await service.update_project(ctx, project_id, body, caller)


@router.delete("/{project_id}", status_code=204)
async def delete_project(project_id: ProjectId, caller: OperateCaller, ctx: Ctx) -> Response:
    await service.delete_project(ctx, project_id, caller)
    return Response(status_code=204)


@router.get("/{project_id}/documents", response_model=Page[DocumentView])
async def list_documents(
    project_id: ProjectId, _: ReadAccess, page: Pagination, ctx: Ctx
) -> Page[DocumentView]:
    await service.get_project(ctx, project_id)
    rows, total = await store.list_documents(ctx.db, project_id, page)
    return Page[DocumentView].build([DocumentView(**dict(r)) for r in rows], total, page)


@router.post("/{project_id}/documents", status_code=201, response_model=DocumentView)
async def add_document(
    project_id: ProjectId,
    body: DocumentCreate,
    caller: OperateCaller,
    ctx: Ctx,
) -> DocumentView:
    """Credentials in the text are redacted before storage (F14)."""
    return await service.add_document(ctx, project_id, body, caller)


@router.delete("/{project_id}/documents/{document_id}", status_code=204)
async def delete_document(
    project_id: ProjectId,
    document_id: DocumentId,
    caller: AdminCaller,
    ctx: Ctx,
) -> Response:
    """Admin only: audited, a new documents version, and a security notification
    when the project's tasks run on an agent that can run commands."""
    await service.remove_document(ctx, project_id, document_id, caller)
    return Response(status_code=204)


@router.get("/{project_id}/documents/versions", response_model=Page[DataVersion])
async def document_versions(
    project_id: ProjectId, _: ReadAccess, page: Pagination, ctx: Ctx
) -> Page[DataVersion]:
    """Every addition or removal is a version holding all documents (newest first)."""
    await service.get_project(ctx, project_id)
    items, total = await data_versions.versions(ctx.db, data_versions.DOCUMENTS, project_id, page)
    return Page[DataVersion].build(items, total, page)


@router.get("/{project_id}/documents/diff", response_model=DataDiff)
async def document_diff(
    project_id: ProjectId,
    _: ReadAccess,
    ctx: Ctx,
    from_version: Annotated[int, Query(alias="from", ge=0, le=MAX_ID)],
    to_version: Annotated[int, Query(alias="to", ge=0, le=MAX_ID)],
) -> DataDiff:
    await service.get_project(ctx, project_id)
    return await data_versions.diff(
        ctx.db, data_versions.DOCUMENTS, project_id, from_version, to_version
    )
