"""The performance changes (docs/performance.md) keep their security properties.

* Token rows are read at once on the event loop's thread (``fetch_one_quick``,
  no cache): a token revoked through the API, or by another process
  (``missionctl token revoke``), is refused on the very next request; a wrong
  secret under a known public id, or an expired token, is refused.
* The task list reads at once on the event loop's thread
  (``Database.fetch_all_quick``) and falls back to the reader pool when SQLite is
  busy; its one query gives the same page and total as the single views.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from app.core.context import AppContext
from app.core.database import Database
from app.security.principal import Scope
from tests.support.api import TokenFactory, assert_error_shape, bearer
from tests.support.cli import missionctl
from tests.support.server import RealServer, create_tokens


async def test_a_token_revoked_through_the_api_is_refused_at_once(
    client: httpx.AsyncClient, make_token: TokenFactory, admin_headers: dict[str, str]
) -> None:
    doomed = await make_token(Scope.READ)
    for _ in range(3):
        assert (await client.get("/api/tasks", headers=bearer(doomed))).status_code == 200
    public_id = doomed.split("_")[1]
    revoked = await client.delete(f"/api/tokens/{public_id}", headers=admin_headers)
    assert revoked.status_code == 204
    assert_error_shape(await client.get("/api/tasks", headers=bearer(doomed)), 401)


async def test_a_wrong_secret_under_a_known_public_id_is_refused(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    token = await make_token(Scope.ADMIN)
    assert (await client.get("/api/tasks", headers=bearer(token))).status_code == 200
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert_error_shape(await client.get("/api/tasks", headers=bearer(forged)), 401)


async def test_a_token_expired_after_use_is_refused(
    client: httpx.AsyncClient, make_token: TokenFactory, ctx: AppContext
) -> None:
    token = await make_token(Scope.READ)
    assert (await client.get("/api/tasks", headers=bearer(token))).status_code == 200
    async with ctx.db.write() as conn:
        await conn.execute(
            "UPDATE api_tokens SET expires_at = '2000-01-01T00:00:00Z' WHERE public_id = ?",
            (token.split("_")[1],),
        )
    assert_error_shape(await client.get("/api/tasks", headers=bearer(token)), 401)


def test_a_revocation_by_another_process_takes_effect_at_once(tmp_path: Path) -> None:
    tokens = create_tokens(tmp_path, {"reader": Scope.READ})
    server = RealServer(tmp_path)
    server.start()
    try:
        headers = bearer(tokens["reader"])
        with httpx.Client(base_url=server.base, timeout=5) as client:
            for _ in range(3):
                assert client.get("/api/tasks", headers=headers).status_code == 200
            revoked = missionctl(tmp_path, "token", "revoke", tokens["reader"].split("_")[1])
            assert revoked.returncode == 0, revoked.stderr
            assert client.get("/api/tasks", headers=headers).status_code == 401
    finally:
        server.stop()


async def test_quick_reads_fall_back_to_the_pool_when_busy(tmp_path: Path) -> None:
    path = tmp_path / "quick.db"
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (x)")
    setup.execute("INSERT INTO t VALUES (1)")
    setup.commit()
    setup.close()
    db = Database(path, readers=1)
    await db.open()
    try:
        assert [tuple(r) for r in await db.fetch_all_quick("SELECT x FROM t")] == [(1,)]
        # SQLite busy for the quick connection (a WAL recovery, a checkpoint): the read
        # is answered by the pool instead of blocking the loop or failing

        class Busy:
            def execute(self, *_: object) -> None:
                raise sqlite3.OperationalError("database is locked")

            def close(self) -> None:
                pass

        db._quick = Busy()  # type: ignore[assignment]
        rows = await db.fetch_all_quick("SELECT x FROM t WHERE x = ?", (1,))
        assert [tuple(r) for r in rows] == [(1,)]
    finally:
        await db.close()


@pytest.mark.parametrize("offset", [0, 49, 50, 10_000])
async def test_the_one_query_task_list_gives_the_same_page_and_total(
    client: httpx.AsyncClient, admin_headers: dict[str, str], offset: int
) -> None:
    agent = await client.post(
        "/api/agents", json={"name": "lister", "role": "r", "model": "m"}, headers=admin_headers
    )
    agent_id = agent.json()["id"]
    first = await client.post(
        "/api/tasks", json={"title": "first", "agent_id": agent_id}, headers=admin_headers
    )
    ids = [first.json()["id"]]
    for n in range(49):
        body = {"title": f"t{n}", "agent_id": agent_id, "depends_on": [ids[0]] if n % 7 else []}
        created = await client.post("/api/tasks", json=body, headers=admin_headers)
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    page = await client.get(
        "/api/tasks", params={"limit": 20, "offset": offset}, headers=admin_headers
    )
    body = page.json()
    assert body["total"] == 50
    expected = sorted(ids, reverse=True)[offset : offset + 20]
    assert [item["id"] for item in body["items"]] == expected
    for item in body["items"]:
        single = await client.get(f"/api/tasks/{item['id']}", headers=admin_headers)
        assert single.json() == item  # the list and the single view agree
