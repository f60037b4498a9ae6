"""HTTP endpoints of agents. Identity has its own admin-only endpoints (F7)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.access.caller import AdminCaller, Caller, OperateCaller
from app.access.dependencies import ReadAccess
from app.agents import data_versions, service, store
from app.agents.data_versions import DataDiff, DataVersion
from app.agents.schemas import (
    AgentCreate,
    AgentStatus,
    AgentUpdate,
    AgentView,
    IdentityChange,
    IdentityDiff,
    IdentityRevert,
    IdentityVersion,
    MemoryCreate,
    MemoryView,
)
from app.agents.shell_readers import require_admin_for_shell_readers
from app.core.context import AppContext, Ctx
from app.core.database import Row
from app.core.errors import ApiError
from app.core.ids import MAX_ID
from app.core.pagination import Page, Pagination

router = APIRouter(prefix="/api/agents", tags=["agents"])

#: bounded like every id, so a huge number is a 422, never an SQLite overflow (a 500)
AgentId = Annotated[int, Path(ge=1, le=MAX_ID)]
MemoryId = Annotated[int, Path(ge=1, le=MAX_ID)]
VersionFrom = Annotated[int, Query(alias="from", ge=0, le=MAX_ID)]
VersionTo = Annotated[int, Query(alias="to", ge=0, le=MAX_ID)]


async def _agent_row(ctx: AppContext, agent_id: int) -> Row:
    row = await store.agent_row(ctx.db, agent_id)
    if row is None:
        raise ApiError(404, "not_found", "no such agent")
    return row


async def _identity_needs_a_person(ctx: AppContext, agent_id: int, caller: Caller) -> None:
    """An identity is the first words of every prompt: for an agent that can run
    commands only an admin in a browser session writes it."""
    await require_admin_for_shell_readers(
        ctx,
        caller,
        [await _agent_row(ctx, agent_id)],
        action="agent.identity_change",
        target=f"agent:{agent_id}",
        what="change the identity of an agent that can run commands",
    )


@router.get("", response_model=Page[AgentView])
async def list_agents(
    _: ReadAccess,
    page: Pagination,
    ctx: Ctx,
    status: Annotated[AgentStatus | None, Query()] = None,
) -> Page[AgentView]:
    rows, total = await store.list_agents(ctx.db, page, status.value if status else None)
    return Page[AgentView].build([service.agent_view(r, ctx.settings) for r in rows], total, page)


@router.post("", status_code=201, response_model=AgentView)
async def create_agent(body: AgentCreate, caller: AdminCaller, ctx: Ctx) -> AgentView:
    """Admin only: an agent's profile, tools and shell access are security settings."""
    return await service.create_agent(ctx, body, caller)


@router.get("/{agent_id}", response_model=AgentView)
async def get_agent(agent_id: AgentId, _: ReadAccess, ctx: Ctx) -> AgentView:
    return await service.get_agent(ctx, agent_id)


@router.patch("/{agent_id}", response_model=AgentView)
async def update_agent(
    agent_id: AgentId, body: AgentUpdate, caller: AdminCaller, ctx: Ctx
) -> AgentView:
    """Admin only. Cannot touch the identity: use PUT .../identity. A change to what
    an agent that can run commands (before or after) can do (profile, tools, shell
    flag) needs an admin in a browser session (app/agents/shell_readers.py)."""
    if {"profile", "allowed_tools", "shell_access"} & body.model_fields_set:
        row = await _agent_row(ctx, agent_id)
        after = service.capability_after(ctx.settings, row, body)
        await require_admin_for_shell_readers(
            ctx,
            caller,
            [row],
            action="agent.capability_change",
            target=f"agent:{agent_id}",
            what="change what an agent that can run commands can do",
            will_run_commands=[agent_id] if after.shell else [],
        )
    return await service.update_agent(ctx, agent_id, body, caller)


@router.post("/{agent_id}/pause", response_model=AgentView)
async def pause_agent(agent_id: AgentId, caller: OperateCaller, ctx: Ctx) -> AgentView:
    return await service.set_status(ctx, agent_id, AgentStatus.PAUSED, caller)


@router.post("/{agent_id}/resume", response_model=AgentView)
async def resume_agent(agent_id: AgentId, caller: OperateCaller, ctx: Ctx) -> AgentView:
    return await service.set_status(ctx, agent_id, AgentStatus.ACTIVE, caller)


@router.delete("/{agent_id}", status_code=204)
async def retire_agent(agent_id: AgentId, caller: AdminCaller, ctx: Ctx) -> Response:
    """Admin only. Soft delete: history stays."""
    await service.retire_agent(ctx, agent_id, caller)
    return Response(status_code=204)


@router.get("/{agent_id}/identity", response_model=IdentityVersion | None)
async def current_identity(agent_id: AgentId, _: ReadAccess, ctx: Ctx) -> IdentityVersion | None:
    agent = await service.get_agent(ctx, agent_id)
    if agent.identity_version == 0:
        return None
    row = await store.identity_version(ctx.db, agent_id, agent.identity_version)
    return IdentityVersion(**dict(row)) if row else None


@router.put("/{agent_id}/identity", response_model=AgentView)
async def change_identity(
    agent_id: AgentId, body: IdentityChange, caller: AdminCaller, ctx: Ctx
) -> AgentView:
    """Admin only. Creates a new version, is audited and alerts the owner (F7). For an
    agent that can run commands: an admin in a browser session only
    (app/agents/shell_readers.py)."""
    await _identity_needs_a_person(ctx, agent_id, caller)
    await service.change_identity(
        ctx,
        agent_id,
        body.text,
        body.reason,
        body.expected_version,
        caller,
    )
    return await service.get_agent(ctx, agent_id)


@router.get("/{agent_id}/identity/versions", response_model=Page[IdentityVersion])
async def identity_versions(
    agent_id: AgentId, _: ReadAccess, page: Pagination, ctx: Ctx
) -> Page[IdentityVersion]:
    await service.get_agent(ctx, agent_id)
    rows, total = await store.identity_versions(ctx.db, agent_id, page)
    return Page[IdentityVersion].build([IdentityVersion(**dict(r)) for r in rows], total, page)


@router.get("/{agent_id}/identity/diff", response_model=IdentityDiff)
async def identity_diff(
    agent_id: AgentId,
    _: ReadAccess,
    ctx: Ctx,
    from_version: Annotated[int, Query(alias="from", ge=0, le=MAX_ID)],
    to_version: Annotated[int, Query(alias="to", ge=0, le=MAX_ID)],
) -> IdentityDiff:
    await service.get_agent(ctx, agent_id)
    return await service.identity_diff(ctx, agent_id, from_version, to_version)


@router.post("/{agent_id}/identity/revert", response_model=AgentView)
async def revert_identity(
    agent_id: AgentId, body: IdentityRevert, caller: AdminCaller, ctx: Ctx
) -> AgentView:
    """Admin only. Writes the old text as a new version (history is never rewritten);
    like a change, a browser session for an agent that can run commands."""
    await _identity_needs_a_person(ctx, agent_id, caller)
    await service.revert_identity(ctx, agent_id, body.to_version, body.reason, caller)
    return await service.get_agent(ctx, agent_id)


@router.get("/{agent_id}/memory", response_model=Page[MemoryView])
async def list_memory(
    agent_id: AgentId, _: ReadAccess, page: Pagination, ctx: Ctx
) -> Page[MemoryView]:
    await service.get_agent(ctx, agent_id)
    rows, total = await store.list_memory(ctx.db, agent_id, page)
    return Page[MemoryView].build([MemoryView(**dict(r)) for r in rows], total, page)


@router.post("/{agent_id}/memory", status_code=201, response_model=MemoryView)
async def add_memory(
    agent_id: AgentId, body: MemoryCreate, caller: OperateCaller, ctx: Ctx
) -> MemoryView:
    """Stored through the credential gate: secrets are redacted before storage (F14).

    Scope operate; admin when the agent can run commands (its memory enters
    its prompt, app/agents/shell_readers.py)."""
    if not body.content.strip():
        raise ApiError(422, "validation_failed", "memory content is empty")
    row = await _agent_row(ctx, agent_id)
    await require_admin_for_shell_readers(
        ctx,
        caller,
        [row],
        action="agent.memory_add",
        target=f"agent:{agent_id}",
        what="add to the memory of an agent that can run commands",
    )
    return await service.add_memory(ctx, agent_id, body.content, caller)


@router.delete("/{agent_id}/memory/{memory_id}", status_code=204)
async def remove_memory(
    agent_id: AgentId, memory_id: MemoryId, caller: AdminCaller, ctx: Ctx
) -> Response:
    """Admin only: audited, a new memory version, and a security notification when
    the agent can run commands."""
    await service.remove_memory(ctx, agent_id, memory_id, caller)
    return Response(status_code=204)


@router.get("/{agent_id}/memory/versions", response_model=Page[DataVersion])
async def memory_versions(
    agent_id: AgentId, _: ReadAccess, page: Pagination, ctx: Ctx
) -> Page[DataVersion]:
    """Every addition or removal is a version holding the whole memory (newest first)."""
    await service.get_agent(ctx, agent_id)
    items, total = await data_versions.versions(ctx.db, data_versions.MEMORY, agent_id, page)
    return Page[DataVersion].build(items, total, page)


@router.get("/{agent_id}/memory/diff", response_model=DataDiff)
async def memory_diff(
    agent_id: AgentId, _: ReadAccess, ctx: Ctx, from_version: VersionFrom, to_version: VersionTo
) -> DataDiff:
    await service.get_agent(ctx, agent_id)
    return await data_versions.diff(
        ctx.db, data_versions.MEMORY, agent_id, from_version, to_version
    )
