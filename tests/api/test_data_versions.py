"""An agent's memory and a project's documents: listed with who added them and
when, removable by an admin only (audited), versioned as a whole with the
identity's diff, and announced as a security notification where they reach an
agent that can run commands (docs/security-model.md, "Memory and documents";
``app/agents/data_versions.py``, ``app/agents/shell_readers.py``).
"""

from __future__ import annotations

import json

import httpx

from app.core.context import AppContext
from app.security.principal import Scope
from tests.support.api import TokenFactory, assert_error_shape, bearer
from tests.support.rules import create_shell_agent
from tests.support.sessions import admin_session
from tests.support.tasks import make_agent


async def security_titles(ctx: AppContext) -> list[str]:
    rows = await ctx.db.fetch_all(
        "SELECT title FROM notifications WHERE category = 'security' ORDER BY id"
    )
    return [str(row["title"]) for row in rows]


async def test_memory_is_versioned_diffed_and_removed_by_an_admin_only(
    client: httpx.AsyncClient,
    ctx: AppContext,
    admin_headers: dict[str, str],
    make_token: TokenFactory,
) -> None:
    agent = await make_agent(client, admin_headers, name="writer")
    operate = bearer(await make_token(Scope.OPERATE))
    base = f"/api/agents/{agent['id']}/memory"
    first = await client.post(base, json={"content": "Prefers short notes."}, headers=operate)
    second = await client.post(base, json={"content": "Deploys on Fridays."}, headers=operate)
    assert first.status_code == second.status_code == 201
    memory_id = first.json()["id"]

    listed = (await client.get(base, headers=operate)).json()
    assert [item["created_by"] for item in listed["items"]] == [
        second.json()["created_by"],
        first.json()["created_by"],
    ]
    versions = (await client.get(f"{base}/versions", headers=operate)).json()
    assert [v["version"] for v in versions["items"]] == [2, 1]
    assert versions["items"][0]["reason"] == f"added entry #{second.json()['id']}"
    diff = (await client.get(f"{base}/diff?from=1&to=2", headers=operate)).json()
    added = [line for line in diff["diff"].splitlines() if line.startswith("+")]
    assert added[0] == "+++ v2"
    assert any(f"+## memory #{second.json()['id']}" in line for line in added)
    assert "+Deploys on Fridays." in added
    assert not any("short notes" in line for line in added)

    # removal: an operator is refused, an admin removes (audited, a new version)
    refused = await client.delete(f"{base}/{memory_id}", headers=operate)
    assert_error_shape(refused, 403, "insufficient_scope")
    removed = await client.delete(f"{base}/{memory_id}", headers=admin_headers)
    assert removed.status_code == 204, removed.text
    assert (await client.delete(f"{base}/{memory_id}", headers=admin_headers)).status_code == 404
    assert (await client.get(base, headers=operate)).json()["total"] == 1
    diff = (await client.get(f"{base}/diff?from=2&to=3", headers=operate)).json()["diff"]
    assert "-Prefers short notes." in diff.splitlines()
    audit = await ctx.db.fetch_one(
        "SELECT summary FROM audit_log WHERE action = 'agent.memory_removed'"
    )
    assert audit is not None
    assert json.loads(audit["summary"]) == {"memory_id": memory_id, "memory_version": 3}
    # an agent without a shell: nothing to announce
    assert not [t for t in await security_titles(ctx) if t.startswith("Memory ")]


async def test_memory_reaching_a_shell_agent_raises_a_security_notification(
    client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    shell = await create_shell_agent(client, admin_headers)
    base = f"/api/agents/{shell['id']}/memory"
    session = await admin_session(client, ctx)
    added = await client.post(base, json={"content": "Use the staging host."}, headers=session)
    assert added.status_code == 201, added.text
    assert f"Memory added to agent '{shell['name']}'" in await security_titles(ctx)
    removed = await client.delete(f"{base}/{added.json()['id']}", headers=admin_headers)
    assert removed.status_code == 204
    assert f"Memory removed from agent '{shell['name']}'" in await security_titles(ctx)


async def test_documents_are_versioned_removed_by_an_admin_and_announced(
    client: httpx.AsyncClient,
    ctx: AppContext,
    admin_headers: dict[str, str],
    make_token: TokenFactory,
) -> None:
    operate = bearer(await make_token(Scope.OPERATE))
    project = (await client.post("/api/projects", json={"name": "ops"}, headers=operate)).json()
    base = f"/api/projects/{project['id']}/documents"
    doc = await client.post(
        base, json={"title": "Runbook", "body": "Reboot at 3."}, headers=operate
    )
    assert doc.status_code == 201 and doc.json()["created_by"].startswith("token:")
    assert not [t for t in await security_titles(ctx) if t.startswith("Document ")]

    shell = await create_shell_agent(client, admin_headers)
    task = await client.post(
        "/api/tasks",
        json={"title": "Disks", "agent_id": shell["id"], "project_id": project["id"]},
        headers=admin_headers,
    )
    assert task.status_code == 201, task.text
    second = await client.post(
        base, json={"title": "Hosts", "body": "db1, db2"}, headers=await admin_session(client, ctx)
    )
    assert second.status_code == 201
    assert f"Document added to project {project['id']}" in await security_titles(ctx)

    versions = (await client.get(f"{base}/versions", headers=operate)).json()
    assert [v["version"] for v in versions["items"]] == [2, 1]
    diff = (await client.get(f"{base}/diff?from=0&to=2", headers=operate)).json()["diff"]
    assert f'+## document #{doc.json()["id"]} "Runbook" · added by token:' in diff
    assert "+db1, db2" in diff.splitlines()

    url = f"{base}/{doc.json()['id']}"
    assert_error_shape(await client.delete(url, headers=operate), 403, "insufficient_scope")
    assert (await client.delete(url, headers=admin_headers)).status_code == 204
    assert f"Document removed from project {project['id']}" in await security_titles(ctx)
    diff = (await client.get(f"{base}/diff?from=2&to=3", headers=operate)).json()["diff"]
    assert "-Reboot at 3." in diff.splitlines() and "+db1, db2" not in diff


async def test_a_missing_version_is_a_404_and_a_bad_one_a_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    agent = await make_agent(client, admin_headers, name="empty")
    missing = await client.get(
        f"/api/agents/{agent['id']}/memory/diff?from=0&to=4", headers=admin_headers
    )
    assert_error_shape(missing, 404, "not_found")
    assert "no memory version 4" in missing.json()["error"]["message"]
    bad = await client.get(
        f"/api/agents/{agent['id']}/memory/diff?from=-1&to=1", headers=admin_headers
    )
    assert bad.status_code == 422 and "from" in bad.text
