"""``GET /api/tasks`` is built as JSON by SQLite (a hot path, docs/performance.md):
its bytes must be exactly what pydantic makes of the same rows as ``Page[TaskView]``,
for every kind of value a task can hold and every filter and page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from app.core.context import AppContext
from app.core.pagination import Page, PageParams
from app.security.principal import Scope
from app.tasks import service
from app.tasks.schemas import TaskStatus, TaskView
from tests.support.api import TokenFactory, bearer
from tests.support.tasks import make_agent, new_task, operate_headers

PAGE = TypeAdapter(Page[TaskView])

AWKWARD_TEXTS = [
    'quotes " and \\ backslashes / slash',
    "control \x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f characters",
    "unicode é ß 漢字 🚀 \u2028\u2029 \ufeff",
    "<script>alert(1)</script> &amp;",
    "",
]


async def _pydantic_bytes(ctx: AppContext, page: PageParams, **filters: Any) -> bytes:
    items, total = await service.list_tasks(
        ctx,
        page,
        status=filters.get("status"),
        agent_id=filters.get("agent_id"),
        mission_id=filters.get("mission_id"),
    )
    return PAGE.dump_json(Page[TaskView].build(items, total, page))


@pytest.mark.anyio
async def test_task_list_bytes_equal_the_pydantic_serialisation(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    make_token: TokenFactory,
    ctx: AppContext,
) -> None:
    headers = await operate_headers(make_token)
    tools = ["read_files", "web_fetch", "shell"]
    agent = await make_agent(client, admin_headers, shell_access=True, allowed_tools=tools)
    other = await make_agent(
        client, admin_headers, name="worker-2", shell_access=True, allowed_tools=tools
    )
    first = await new_task(client, headers, agent_id=agent["id"], title="first")
    created = [first]
    soon = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    for number, text in enumerate(AWKWARD_TEXTS):
        created.append(
            await new_task(
                client,
                headers,
                agent_id=other["id"] if number % 2 else agent["id"],
                title=text or "t",
                description=text,
                priority=("low", "normal", "high", "urgent")[number % 4],
                required_tools=tools[: number % 3],
                needs_shell=number % 2 == 0,
                depends_on=[t["id"] for t in created][-3:] if number else [],
                idempotency_key=f"key-{number}" if number % 2 else None,
                due_at=soon if number == 2 else None,
            )
        )
    # a deleted task is not listed; a cancelled one has no active conversation
    await client.post(f"/api/tasks/{created[-1]['id']}/cancel", headers=headers)
    await client.delete(f"/api/tasks/{created[-1]['id']}", headers=headers)
    await client.post(f"/api/tasks/{created[-2]['id']}/cancel", headers=headers)

    reader = bearer(await make_token(Scope.READ))
    cases: list[tuple[str, PageParams, dict[str, Any]]] = [
        ("", PageParams(limit=50, offset=0), {}),
        ("?limit=2", PageParams(limit=2, offset=0), {}),
        ("?limit=2&offset=2", PageParams(limit=2, offset=2), {}),
        ("?offset=4", PageParams(limit=50, offset=4), {}),
        ("?offset=100", PageParams(limit=50, offset=100), {}),
        (f"?agent_id={other['id']}", PageParams(limit=50, offset=0), {"agent_id": other["id"]}),
        ("?status=cancelled", PageParams(limit=50, offset=0), {"status": TaskStatus.CANCELLED}),
        ("?status=blocked", PageParams(limit=50, offset=0), {"status": TaskStatus.BLOCKED}),
        ("?mission_id=1", PageParams(limit=50, offset=0), {"mission_id": 1}),
    ]
    for query, page, filters in cases:
        response = await client.get(f"/api/tasks{query}", headers=reader)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        expected = await _pydantic_bytes(ctx, page, **filters)
        assert response.content == expected, query
        PAGE.validate_json(response.content)  # and it is a valid page
    listed = (await client.get("/api/tasks", headers=reader)).json()
    assert listed["total"] == len(created) - 1
    assert [t["id"] for t in listed["items"]] == sorted(
        (t["id"] for t in created[:-1]), reverse=True
    )
    assert any(t["depends_on"] for t in listed["items"])
    assert any(t["active_conversation_id"] for t in listed["items"])
