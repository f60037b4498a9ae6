"""Numbers SQLite cannot store never become a 500 (found by the API fuzzer, docs/performance.md).

SQLite integers are 64-bit; Python's are not. Before the fix, 2^63 in an
unbounded id or version reached a query and raised ``OverflowError`` (a 500).

* every integer path and query parameter of the OpenAPI document, with 2^63 and
  -2^63-1 (the other parameters valid, pointing at seeded rows);
* the body fields the fuzzer and the probe found, and their neighbours;
* ``PATCH /api/agents/{id}`` with a version only (it built ``SET , version``).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import FastAPI

BIG = 2**63
SMALL = -(2**63) - 1
STREAM = "/api/events/stream"


async def seed(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, int]:
    async def post(path: str, body: dict[str, Any]) -> int:
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        return int(response.json()["id"])

    agent = await post("/api/agents", {"name": "big", "role": "r", "model": "m"})
    project = await post("/api/projects", {"name": "big"})
    document = await post(f"/api/projects/{project}/documents", {"title": "t", "body": "b"})
    rule = await post(
        "/api/rules",
        {
            "name": "big",
            "on": "task.created",
            "then": [
                {
                    "type": "notify",
                    "category": "task",
                    "severity": "info",
                    "title": "t",
                    "body": "b",
                }
            ],
        },
    )
    task = await post("/api/tasks", {"title": "big", "agent_id": agent})
    mission = await post(
        "/api/missions", {"title": "m", "goal": "g", "steps": [{"title": "s", "agent_id": agent}]}
    )
    return {
        "agent_id": agent,
        "project_id": project,
        "document_id": document,
        "rule_id": rule,
        "task_id": task,
        "mission_id": mission,
    }


def integer_parameters(app: FastAPI) -> list[tuple[str, str, str, str]]:
    """(method, path, location, name) of every integer path or query parameter."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        if path == STREAM:
            continue
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                kinds = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
                if "integer" in kinds and parameter["in"] in ("path", "query"):
                    found.append((method.upper(), path, parameter["in"], parameter["name"]))
    return found


async def test_huge_integers_in_paths_and_queries_are_never_a_500(
    app: FastAPI, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    ids = await seed(client, admin_headers)
    parameters = integer_parameters(app)
    assert len(parameters) >= 40
    for method, template, where, name in parameters:
        for value in (BIG, SMALL):

            def fill(match: re.Match[str], name: str = name, value: int = value) -> str:
                key = match.group(1)
                if key == name:
                    return str(value)
                return str(ids.get(key, 1))

            path = re.sub(r"\{([^}]+)\}", fill, template)
            params = {name: str(value)} if where == "query" else {}
            if "/identity/diff" in template and where == "path":
                params = {"from": "0", "to": "0"}
            elif "/identity/diff" in template:
                params = {"from": "0", "to": "0", name: str(value)}
            response = await client.request(
                method,
                path,
                params=params,
                json={} if method != "GET" else None,
                headers=admin_headers,
            )
            assert response.status_code < 500, (method, path, params, response.text)


BODY_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("PATCH", "/api/agents/{agent_id}", {"version": "{v}", "role": "x"}),
    ("PUT", "/api/agents/{agent_id}/identity", {"text": "x", "expected_version": "{v}"}),
    ("POST", "/api/agents/{agent_id}/identity/revert", {"to_version": "{v}"}),
    ("PATCH", "/api/projects/{project_id}", {"version": "{v}"}),
    ("PATCH", "/api/tasks/{task_id}", {"version": "{v}"}),
    ("PATCH", "/api/rules/{rule_id}", {"version": "{v}"}),
    ("POST", "/api/rules/{rule_id}/approve", {"version": "{v}"}),
    ("POST", "/api/missions/{mission_id}/reject", {"version": "{v}"}),
    ("POST", "/api/missions/{mission_id}/cancel", {"version": "{v}"}),
    ("PUT", "/api/policies/notifications", {"version": "{v}"}),
    ("POST", "/api/tasks", {"title": "t", "agent_id": "{v}"}),
    ("POST", "/api/tasks", {"title": "t", "agent_id": "{agent_id}", "depends_on": ["{v}"]}),
    ("POST", "/api/tasks", {"title": "t", "agent_id": "{agent_id}", "mission_id": "{v}"}),
    ("POST", "/api/tasks", {"title": "t", "agent_id": "{agent_id}", "project_id": "{v}"}),
    (
        "POST",
        "/api/missions",
        {"title": "m", "goal": "g", "steps": [{"title": "s", "agent_id": "{v}"}]},
    ),
    (
        "POST",
        "/api/missions",
        {
            "title": "m",
            "goal": "g",
            "steps": [{"title": "s", "agent_id": "{agent_id}"}],
            "bounds": {"tokens": "{v}"},
        },
    ),
    ("POST", "/api/rules/{rule_id}/dry-run", {"event_type": "task.created", "subject_id": "{v}"}),
]


def render(value: Any, ids: dict[str, int], number: int) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        key = value[1:-1]
        return number if key == "v" else ids[key]
    if isinstance(value, dict):
        return {k: render(v, ids, number) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, ids, number) for v in value]
    return value


async def test_huge_integers_in_bodies_are_never_a_500(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    ids = await seed(client, admin_headers)
    for method, template, body in BODY_CASES:
        path = re.sub(r"\{([^}]+)\}", lambda m: str(ids[m.group(1)]), template)
        for value in (BIG, SMALL):
            response = await client.request(
                method, path, json=render(body, ids, value), headers=admin_headers
            )
            assert response.status_code < 500, (method, path, value, response.text)


async def test_an_agent_update_with_only_a_version_moves_the_version_on(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    ids = await seed(client, admin_headers)
    path = f"/api/agents/{ids['agent_id']}"
    current = (await client.get(path, headers=admin_headers)).json()["version"]
    response = await client.patch(path, json={"version": current}, headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == current + 1
    stale = await client.patch(path, json={"version": current}, headers=admin_headers)
    assert stale.status_code == 409
