"""The rules of the agent domain: creation, changes, identity versions (F7), memory."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from app.access.caller import Caller
from app.agents import store
from app.agents.schemas import (
    AgentCreate,
    AgentStatus,
    AgentUpdate,
    AgentView,
    CapabilityView,
    IdentityDiff,
    MemoryView,
    Quotas,
)
from app.capability.model import Capability, Tool, agent_capability
from app.core.clock import now_iso
from app.core.context import AppContext
from app.core.database import Row
from app.core.errors import ApiError
from app.core.settings import Settings
from app.core.textdiff import version_diff
from app.events.transaction import Tx, transaction
from app.events.types import Category, EventType, Severity
from app.profiles.catalog import profile_traits, profiles_status
from app.security.principal import Principal


def agent_view(row: Row, settings: Settings) -> AgentView:
    capability = capability_of(settings, row)
    return AgentView(
        id=row["id"],
        name=row["name"],
        role=row["role"],
        model=row["model"],
        status=AgentStatus(row["status"]),
        profile=row["profile"],
        shell_access=bool(row["shell_access"]),
        allowed_tools=[Tool(t) for t in json.loads(row["allowed_tools"])],
        capability=CapabilityView(
            tools=sorted(capability.tools),
            shell=capability.shell,
            write=capability.write,
            badge=capability.badge,
            basis=capability.basis,
        ),
        quotas=Quotas(
            tokens_per_day=row["quota_tokens_per_day"],
            cost_usd_per_day=row["quota_cost_usd_per_day"],
            runs_per_day=row["quota_runs_per_day"],
        ),
        think_interval_minutes=row["think_interval_minutes"],
        identity_version=row["identity_version"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def known_profiles(ctx: AppContext) -> set[str]:
    """Names of the command profiles the host defines (F27), loaded by the worker's
    own rule (app/profiles/catalog.py, ``profiles_source``); the example set when
    this host has no profiles file (development). Raises a 503 ``profiles_refused``
    naming the problem and the fix when the worker would refuse the file: a broken
    or unsafe file is the host's fault, not an unknown profile."""
    status = profiles_status(ctx.settings)
    problem = status.public_error()
    if problem is not None:
        raise ApiError(
            503,
            "profiles_refused",
            f"the host's command profiles file is refused, as the worker refuses it:"
            f" {problem}. Fix the file on the host (`missionctl doctor` names it);"
            " until then no agent can be given a profile",
            {"field": "profile"},
        )
    return {name for name, _ in status.profiles}


def capability_of(settings: Settings, row: Row) -> Capability:
    """What an agent (a stored row) can do with its profile: the one answer that
    pre-flight, rule approval, the security alerts and the UI use
    (app/capability/model.py). An unreadable tool list counts as every tool."""
    try:
        tools = json.loads(row["allowed_tools"] or "[]")
    except (TypeError, ValueError):
        tools = [t.value for t in Tool]
    return agent_capability(
        profile_traits(settings).get(str(row["profile"])),
        shell_access=bool(row["shell_access"]),
        allowed_tools=tools if isinstance(tools, list) else [t.value for t in Tool],
    )


def _shell_tool_needs_access(tools: list[str], shell: bool) -> None:
    if Tool.SHELL.value in tools and not shell:
        raise ApiError(422, "shell_not_enabled", "the shell tool needs shell_access: true", None)


def capability_after(settings: Settings, row: Row, body: AgentUpdate) -> Capability:
    """What the agent (a stored row) could do once ``body`` is applied (422 when the
    change asks for the shell tool without shell access)."""
    tools = (
        [t.value for t in body.allowed_tools]
        if body.allowed_tools is not None
        else json.loads(row["allowed_tools"] or "[]")
    )
    profile = body.profile if body.profile is not None else str(row["profile"])
    shell = body.shell_access if body.shell_access is not None else bool(row["shell_access"])
    _shell_tool_needs_access(tools, shell)
    return agent_capability(
        profile_traits(settings).get(profile), shell_access=shell, allowed_tools=tools
    )


def _check_profile(ctx: AppContext, profile: str) -> None:
    if profile not in known_profiles(ctx):
        raise ApiError(
            422,
            "unknown_profile",
            f"no command profile named '{profile}' is defined on this host",
            {"field": "profile"},
        )


async def get_agent(ctx: AppContext, agent_id: int) -> AgentView:
    row = await store.agent_row(ctx.db, agent_id)
    if row is None:
        raise ApiError(404, "not_found", "no such agent")
    return agent_view(row, ctx.settings)


async def create_agent(ctx: AppContext, body: AgentCreate, caller: Caller) -> AgentView:
    _check_profile(ctx, body.profile)
    settings = ctx.settings
    quotas = body.quotas or Quotas(
        tokens_per_day=settings.agent_default_tokens_per_day,
        cost_usd_per_day=settings.agent_default_cost_usd_per_day,
        runs_per_day=settings.agent_default_runs_per_day,
    )
    values: dict[str, Any] = {
        "name": body.name,
        "role": body.role,
        "model": body.model,
        "profile": body.profile,
        "shell_access": body.shell_access,
        "allowed_tools": [t.value for t in body.allowed_tools],
        "quota_tokens_per_day": quotas.tokens_per_day,
        "quota_cost_usd_per_day": quotas.cost_usd_per_day,
        "quota_runs_per_day": quotas.runs_per_day,
        "think_interval_minutes": body.think_interval_minutes,
    }
    try:
        async with transaction(ctx, caller.actor, caller.client) as tx:
            agent_id = await store.insert_agent(tx.conn, values)
            if body.identity:
                await store.insert_identity(
                    tx.conn, agent_id, 1, body.identity, "initial identity", caller.actor
                )
                await store.update_agent(tx.conn, agent_id, 1, {"identity_version": 1})
            summary = {k: v for k, v in values.items() if k != "name"} | {"name": body.name}
            await tx.audit("agent.created", f"agent:{agent_id}", summary)
            await tx.emit(EventType.AGENT_CREATED, "agent", agent_id, {"name": body.name})
            created = await store.agent_row_tx(tx.conn, agent_id)
            capability = capability_of(ctx.settings, created) if created is not None else None
            if capability is None or capability.shell:
                await tx.security_alert(
                    f"Agent '{body.name}' created with shell access",
                    f"{caller.actor} created an agent that may run shell commands"
                    f" ({capability.basis if capability else 'unknown profile'}).",
                )
    except sqlite3.IntegrityError:
        raise ApiError(409, "conflict", "an agent with that name exists") from None
    return await get_agent(ctx, agent_id)


async def update_agent(
    ctx: AppContext, agent_id: int, body: AgentUpdate, caller: Caller
) -> AgentView:
    changes: dict[str, Any] = {}
    for field in ("role", "model", "profile", "shell_access", "think_interval_minutes"):
        value = getattr(body, field)
        if value is not None:
            changes[field] = value
    if body.allowed_tools is not None:
        changes["allowed_tools"] = [t.value for t in body.allowed_tools]
    if body.quotas is not None:
        changes["quota_tokens_per_day"] = body.quotas.tokens_per_day
        changes["quota_cost_usd_per_day"] = body.quotas.cost_usd_per_day
        changes["quota_runs_per_day"] = body.quotas.runs_per_day
    if "profile" in changes:
        _check_profile(ctx, changes["profile"])
    async with transaction(ctx, caller.actor, caller.client) as tx:
        current = await store.agent_row_tx(tx.conn, agent_id)
        if current is None:
            raise ApiError(404, "not_found", "no such agent")
        shell = changes.get("shell_access", bool(current["shell_access"]))
        tools = changes.get("allowed_tools", json.loads(current["allowed_tools"]))
        _shell_tool_needs_access(tools, shell)
        before = capability_of(ctx.settings, current)
        if not await store.update_agent(tx.conn, agent_id, body.version, changes):
            raise ApiError(409, "conflict", "the agent changed since you read it; reload")
        updated = await store.agent_row_tx(tx.conn, agent_id)
        after = capability_of(ctx.settings, updated) if updated is not None else before
        await tx.audit("agent.updated", f"agent:{agent_id}", changes)
        await tx.emit(EventType.AGENT_UPDATED, "agent", agent_id, {"fields": sorted(changes)})
        if {"profile", "shell_access", "allowed_tools"} & changes.keys():
            await _capability_changed(tx, current, before, after, caller.principal)
    return await get_agent(ctx, agent_id)


async def _capability_changed(
    tx: Tx, current: Row, before: Capability, after: Capability, principal: Principal
) -> None:
    """A change to what an agent can do is recorded like an identity change (the
    audit entry holds the before and the after) and always announced."""
    name = current["name"]
    await tx.audit(
        "agent.capability_changed",
        f"agent:{current['id']}",
        {"before": before.as_dict(), "after": after.as_dict(), "profile": current["profile"]},
    )
    if after.shell and not before.shell:
        title = f"Shell access granted to agent '{name}'"
    else:
        title = f"Capability of agent '{name}' changed"
    await tx.security_alert(
        title,
        f"{principal.actor} changed what agent '{name}' can do: {before.badge}"
        f" ({', '.join(sorted(t.value for t in before.tools)) or 'no tools'}) ->"
        f" {after.badge} ({', '.join(sorted(t.value for t in after.tools)) or 'no tools'};"
        f" {after.basis}).",
    )


async def set_status(
    ctx: AppContext, agent_id: int, status: AgentStatus, caller: Caller
) -> AgentView:
    async with transaction(ctx, caller.actor, caller.client) as tx:
        current = await store.agent_row_tx(tx.conn, agent_id)
        if current is None:
            raise ApiError(404, "not_found", "no such agent")
        if current["status"] == AgentStatus.RETIRED:
            raise ApiError(409, "invalid_transition", "a retired agent cannot change status")
        changes: dict[str, Any] = {"status": status.value}
        await store.update_agent(tx.conn, agent_id, int(current["version"]), changes)
        await tx.audit("agent.status_changed", f"agent:{agent_id}", {"status": status.value})
        await tx.emit(
            EventType.AGENT_STATUS_CHANGED,
            "agent",
            agent_id,
            {"status": status.value, "previous": current["status"]},
        )
    return await get_agent(ctx, agent_id)


async def retire_agent(ctx: AppContext, agent_id: int, caller: Caller) -> None:
    """Soft delete: the agent keeps its history but leaves every list."""
    async with transaction(ctx, caller.actor, caller.client) as tx:
        current = await store.agent_row_tx(tx.conn, agent_id)
        if current is None:
            raise ApiError(404, "not_found", "no such agent")
        await store.update_agent(
            tx.conn,
            agent_id,
            int(current["version"]),
            {"status": AgentStatus.RETIRED.value, "deleted_at": now_iso()},
        )
        await tx.audit("agent.deleted", f"agent:{agent_id}")
        await tx.emit(EventType.AGENT_DELETED, "agent", agent_id, {"name": current["name"]})


# identity (F7) ---------------------------------------------------------------
async def _write_identity(
    tx: Tx, agent: Row, text: str, reason: str, principal: Principal, action: str
) -> int:
    new_version = int(agent["identity_version"]) + 1
    await store.insert_identity(
        tx.conn, int(agent["id"]), new_version, text, reason, principal.actor
    )
    await store.update_agent(
        tx.conn, int(agent["id"]), int(agent["version"]), {"identity_version": new_version}
    )
    await tx.audit(
        action,
        f"agent:{agent['id']}",
        {"from_version": agent["identity_version"], "to_version": new_version, "reason": reason},
    )
    await tx.emit(
        EventType.AGENT_IDENTITY_CHANGED,
        "agent",
        int(agent["id"]),
        {"identity_version": new_version},
    )
    await tx.security_alert(
        f"Identity of agent '{agent['name']}' changed",
        f"{principal.actor} set identity version {new_version}"
        + (f": {reason}" if reason else "")
        + ". Review it under Agents; revert with one click if it was not you.",
    )
    await tx.notify(
        Category.SYSTEM, Severity.INFO, f"Identity v{new_version} of {agent['name']}", reason
    )
    return new_version


async def change_identity(
    ctx: AppContext,
    agent_id: int,
    text: str,
    reason: str,
    expected_version: int,
    caller: Caller,
) -> int:
    async with transaction(ctx, caller.actor, caller.client) as tx:
        agent = await store.agent_row_tx(tx.conn, agent_id)
        if agent is None:
            raise ApiError(404, "not_found", "no such agent")
        if int(agent["identity_version"]) != expected_version:
            raise ApiError(
                409,
                "conflict",
                f"the identity is at version {agent['identity_version']}, not {expected_version}",
            )
        return await _write_identity(
            tx, agent, text, reason, caller.principal, "agent.identity_changed"
        )


async def revert_identity(
    ctx: AppContext, agent_id: int, to_version: int, reason: str, caller: Caller
) -> int:
    async with transaction(ctx, caller.actor, caller.client) as tx:
        agent = await store.agent_row_tx(tx.conn, agent_id)
        if agent is None:
            raise ApiError(404, "not_found", "no such agent")
        old = await store.identity_version_tx(tx.conn, agent_id, to_version)
        if old is None:
            raise ApiError(404, "not_found", f"no identity version {to_version}")
        why = reason or f"revert to version {to_version}"
        return await _write_identity(
            tx, agent, str(old["text"]), why, caller.principal, "agent.identity_reverted"
        )


async def identity_diff(
    ctx: AppContext, agent_id: int, from_version: int, to_version: int
) -> IdentityDiff:
    async def load(version: int) -> str | None:
        row = await store.identity_version(ctx.db, agent_id, version)
        return None if row is None else str(row["text"])

    diff = await version_diff(load, from_version, to_version, "identity")
    return IdentityDiff(from_version=from_version, to_version=to_version, diff=diff)


# memory (through the credential gate, F14; versioned and announced, "Memory and
# documents" in docs/security-model.md) -------------------------------------------
async def _memory_version(tx: Tx, agent_id: int, reason: str, principal: Principal) -> int:
    from app.agents import data_versions

    entries = [
        data_versions.Entry(
            int(r["id"]), "", str(r["content"]), str(r["created_by"]), str(r["created_at"])
        )
        for r in await store.live_memory_tx(tx.conn, agent_id)
    ]
    text = data_versions.render("memory", entries)
    return await data_versions.record(
        tx.conn, data_versions.MEMORY, agent_id, text, reason, principal.actor
    )


async def add_memory(ctx: AppContext, agent_id: int, content: str, caller: Caller) -> MemoryView:
    from app.agents.shell_readers import alert_shell_readers
    from app.security.credential_gate import redact

    redaction = redact(content)
    async with transaction(ctx, caller.actor, caller.client) as tx:
        agent = await store.agent_row_tx(tx.conn, agent_id)
        if agent is None:
            raise ApiError(404, "not_found", "no such agent")
        memory_id = await store.insert_memory(tx.conn, agent_id, redaction.text, caller.actor)
        version = await _memory_version(tx, agent_id, f"added entry #{memory_id}", caller.principal)
        await tx.audit(
            "agent.memory_added",
            f"agent:{agent_id}",
            {
                "memory_id": memory_id,
                "memory_version": version,
                "redacted": {k.value: v for k, v in redaction.counts.items()},
            },
        )
        await tx.emit(EventType.MEMORY_ADDED, "agent", agent_id, {"memory_id": memory_id})
        await alert_shell_readers(
            ctx,
            tx,
            [agent],
            f"Memory added to agent '{agent['name']}'",
            f"{caller.actor} added memory entry #{memory_id} (memory version {version}).",
        )
        if redaction.found:
            await tx.security_alert(
                "Credential kept out of agent memory",
                f"{caller.actor} tried to store a credential in the memory of agent"
                f" {agent_id}; it was redacted.",
            )
    return MemoryView(
        id=memory_id,
        agent_id=agent_id,
        content=redaction.text,
        redacted=redaction.found,
        created_by=caller.actor,
        created_at=now_iso(),
    )


async def remove_memory(ctx: AppContext, agent_id: int, memory_id: int, caller: Caller) -> None:
    """Admin only (the router): the entry leaves every later prompt; a new version."""
    from app.agents.shell_readers import alert_shell_readers

    async with transaction(ctx, caller.actor, caller.client) as tx:
        agent = await store.agent_row_tx(tx.conn, agent_id)
        if agent is None or not await store.soft_delete_memory(tx.conn, agent_id, memory_id):
            raise ApiError(404, "not_found", "no such memory entry")
        version = await _memory_version(
            tx, agent_id, f"removed entry #{memory_id}", caller.principal
        )
        await tx.audit(
            "agent.memory_removed",
            f"agent:{agent_id}",
            {"memory_id": memory_id, "memory_version": version},
        )
        await tx.emit(EventType.AGENT_UPDATED, "agent", agent_id, {"removed_memory_id": memory_id})
        await alert_shell_readers(
            ctx,
            tx,
            [agent],
            f"Memory removed from agent '{agent['name']}'",
            f"{caller.actor} removed memory entry #{memory_id} (memory version {version}).",
        )
