"""Projects and context documents; documents pass the credential gate (F14)."""

from __future__ import annotations

import httpx

from app.core.context import AppContext
from app.projects.service import load_context
from app.security.principal import Scope
from tests.support.api import TokenFactory, assert_error_shape, bearer


async def test_project_lifecycle(client: httpx.AsyncClient, make_token: TokenFactory) -> None:
    operate = bearer(await make_token(Scope.OPERATE))
    read = bearer(await make_token(Scope.READ))
    assert (await client.post("/api/projects", json={"name": "x"}, headers=read)).status_code == 403
    created = await client.post(
        "/api/projects", json={"name": "garden", "description": "sensors"}, headers=operate
    )
    assert created.status_code == 201
    project = created.json()
    dup = await client.post("/api/projects", json={"name": "garden"}, headers=operate)
    assert_error_shape(dup, 409, "conflict")
    renamed = await client.patch(
        f"/api/projects/{project['id']}",
        json={"version": project["version"], "name": "greenhouse"},
        headers=operate,
    )
    assert renamed.json()["name"] == "greenhouse"
    stale = await client.patch(
        f"/api/projects/{project['id']}",
        json={"version": project["version"], "name": "old"},
        headers=operate,
    )
    assert_error_shape(stale, 409, "conflict")
    missing = await client.patch("/api/projects/999", json={"version": 1}, headers=operate)
    assert_error_shape(missing, 404, "not_found")
    assert (await client.get("/api/projects", headers=read)).json()["total"] == 1
    assert (
        await client.delete(f"/api/projects/{project['id']}", headers=operate)
    ).status_code == 204
    assert (await client.get("/api/projects", headers=read)).json()["total"] == 0
    assert (await client.get(f"/api/projects/{project['id']}", headers=read)).status_code == 404


async def test_documents_are_redacted_before_storage_and_on_load(
    client: httpx.AsyncClient, make_token: TokenFactory, ctx: AppContext
) -> None:
    operate = bearer(await make_token(Scope.OPERATE))
    project = (await client.post("/api/projects", json={"name": "p"}, headers=operate)).json()
    aws = "AKIAIOSFODNN7EXAMPLE"
    document = await client.post(
        f"/api/projects/{project['id']}/documents",
        json={"title": "deploy notes", "body": f"use key {aws} for the bucket"},
        headers=operate,
    )
    assert document.status_code == 201 and document.json()["redacted"] is True
    assert aws not in document.text
    rows = await ctx.db.fetch_all("SELECT body FROM project_documents")
    assert aws not in rows[0]["body"]
    # a document that slipped in by another path is still redacted when loaded
    async with ctx.db.write() as conn:
        await conn.execute(
            "INSERT INTO project_documents (project_id, title, body, created_at, updated_at)"
            " VALUES (?, 'raw', ?, 't', 't')",
            (project["id"], f"secret={aws}"),
        )
    context = await load_context(ctx.db, project["id"])
    assert aws not in context and "[REDACTED:" in context
    listing = await client.get(f"/api/projects/{project['id']}/documents", headers=operate)
    assert listing.json()["total"] == 2
    doc_id = document.json()["id"]
    # removing a document is admin-only (docs/security-model.md, "Memory and documents")
    url = f"/api/projects/{project['id']}/documents/{doc_id}"
    assert (await client.delete(url, headers=operate)).status_code == 403
    deleted = await client.delete(url, headers=bearer(await make_token(Scope.ADMIN)))
    assert deleted.status_code == 204
