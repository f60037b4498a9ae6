"""Projects: plain records, plus documents that reach agents only through the gate."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from app.access.caller import Caller
from app.agents import data_versions
from app.agents.shell_readers import alert_shell_readers, require_admin_for_shell_readers
from app.core.context import AppContext
from app.core.database import Database
from app.core.errors import ApiError
from app.events.transaction import Tx, transaction
from app.events.types import EventType
from app.projects import store
from app.projects.schemas import (
    DocumentCreate,
    DocumentView,
    ProjectCreate,
    ProjectUpdate,
    ProjectView,
)
from app.security.credential_gate import redact


async def get_project(ctx: AppContext, project_id: int) -> ProjectView:
    row = await store.project_row(ctx.db, project_id)
    if row is None:
        raise ApiError(404, "not_found", "no such project")
    return ProjectView(**dict(row))


async def create_project(ctx: AppContext, body: ProjectCreate, caller: Caller) -> ProjectView:
    try:
        async with transaction(ctx, caller.actor, caller.client) as tx:
            project_id = await store.insert_project(tx.conn, body.name, body.description)
            await tx.audit("project.created", f"project:{project_id}", {"name": body.name})
            await tx.emit(EventType.PROJECT_CREATED, "project", project_id, {"name": body.name})
    except sqlite3.IntegrityError:
        raise ApiError(409, "conflict", "a project with that name exists") from None
    return await get_project(ctx, project_id)


async def update_project(
    ctx: AppContext, project_id: int, body: ProjectUpdate, caller: Caller
) -> ProjectView:
    try:
        async with transaction(ctx, caller.actor, caller.client) as tx:
            if not await store.update_project(
                tx.conn, project_id, body.version, body.name, body.description
            ):
                await get_project(ctx, project_id)  # 404 when it does not exist
                raise ApiError(409, "conflict", "the project changed since you read it; reload")
            await tx.audit(
                "project.updated", f"project:{project_id}", body.model_dump(exclude_none=True)
            )
            await tx.emit(EventType.PROJECT_UPDATED, "project", project_id)
    except sqlite3.IntegrityError:
        raise ApiError(409, "conflict", "a project with that name exists") from None
    return await get_project(ctx, project_id)


async def delete_project(ctx: AppContext, project_id: int, caller: Caller) -> None:
    async with transaction(ctx, caller.actor, caller.client) as tx:
        if not await store.soft_delete_project(tx.conn, project_id):
            raise ApiError(404, "not_found", "no such project")
        await tx.audit("project.deleted", f"project:{project_id}")
        await tx.emit(EventType.PROJECT_DELETED, "project", project_id)


async def add_document(
    ctx: AppContext, project_id: int, body: DocumentCreate, caller: Caller
) -> DocumentView:
    """Documents are redacted on the way in; the runner redacts again on load (F14).

    A project whose tasks run on an agent that can run commands takes new
    documents from an admin only: a document enters those agents' prompts
    (framed as untrusted data, ``app/runner/prompt.py``), and a shell turns
    words into actions (docs/security-model.md, "Memory and documents")."""
    await get_project(ctx, project_id)
    readers = await store.shell_agent_rows(ctx.db, project_id)
    await require_admin_for_shell_readers(
        ctx,
        caller,
        readers,
        action="project.document_add",
        target=f"project:{project_id}",
        what="add a document to a project whose tasks run on an agent that can run commands",
    )
    redaction = redact(body.body)
    async with transaction(ctx, caller.actor, caller.client) as tx:
        document_id = await store.insert_document(
            tx.conn, project_id, body.title, redaction.text, caller.actor
        )
        version = await _documents_version(tx, project_id, f"added document #{document_id}")
        await tx.audit(
            "project.document_added",
            f"project:{project_id}",
            {
                "document_id": document_id,
                "documents_version": version,
                "redacted": redaction.found,
            },
        )
        await tx.emit(
            EventType.PROJECT_UPDATED, "project", project_id, {"document_id": document_id}
        )
        await alert_shell_readers(
            ctx,
            tx,
            readers,
            f"Document added to project {project_id}",
            f"{caller.actor} added document #{document_id} (documents version {version}).",
        )
        if redaction.found:
            await tx.security_alert(
                "Credential kept out of a project document",
                f"{caller.actor} added a document to project {project_id} holding a"
                " credential; it was redacted before storage.",
            )
    row = await store.document_row(ctx.db, document_id)
    assert row is not None
    return DocumentView(**dict(row), redacted=redaction.found)


async def remove_document(
    ctx: AppContext, project_id: int, document_id: int, caller: Caller
) -> None:
    """Admin only (the router): the document leaves every later prompt; audited, a new
    version, and a security notification when it reached an agent with a shell."""
    readers = await store.shell_agent_rows(ctx.db, project_id)
    async with transaction(ctx, caller.actor, caller.client) as tx:
        if not await store.soft_delete_document(tx.conn, project_id, document_id):
            raise ApiError(404, "not_found", "no such document")
        version = await _documents_version(tx, project_id, f"removed document #{document_id}")
        await tx.audit(
            "project.document_deleted",
            f"project:{project_id}",
            {"document_id": document_id, "documents_version": version},
        )
        await tx.emit(
            EventType.PROJECT_UPDATED, "project", project_id, {"removed_document_id": document_id}
        )
        await alert_shell_readers(
            ctx,
            tx,
            readers,
            f"Document removed from project {project_id}",
            f"{caller.actor} removed document #{document_id} (documents version {version}).",
        )


async def _documents_version(tx: Tx, project_id: int, reason: str) -> int:
    entries = [
        data_versions.Entry(
            int(r["id"]),
            str(r["title"]),
            str(r["body"]),
            str(r["created_by"] or "unknown"),
            str(r["created_at"]),
        )
        for r in await store.live_documents_tx(tx.conn, project_id)
    ]
    text = data_versions.render("document", entries)
    return await data_versions.record(
        tx.conn, data_versions.DOCUMENTS, project_id, text, reason, tx.actor
    )


@dataclass(frozen=True, slots=True)
class ContextDocument:
    """One project document for a prompt: redacted, with who added it and when."""

    title: str
    body: str
    created_by: str
    updated_at: str


async def context_documents(db: Database, project_id: int) -> list[ContextDocument]:
    """The project's documents for a prompt, each passed through the credential gate."""
    return [
        ContextDocument(
            title=redact(str(row["title"])).text,
            body=redact(str(row["body"])).text,
            created_by=str(row["created_by"] or "unknown"),
            updated_at=str(row["updated_at"]),
        )
        for row in await store.context_documents(db, project_id)
    ]


async def load_context(db: Database, project_id: int) -> str:
    """Project context for a prompt, passed through the credential gate (F14)."""
    parts = [
        f"## {row['title']}\n{row['body']}" for row in await store.context_documents(db, project_id)
    ]
    return redact("\n\n".join(parts)).text
