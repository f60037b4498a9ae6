"""Backups over HTTP (the UI's Backups page) and the Health page's repairs."""

from __future__ import annotations

import gzip
from typing import Any

import httpx

from app.care.repairs import forget_cache
from app.core.context import AppContext
from app.security.principal import Scope
from tests.support.api import TokenFactory, assert_error_shape, bearer, login

URL = "/api/backups"


async def test_create_list_and_verify(
    client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str]
) -> None:
    assert (await client.get(URL, headers=admin_headers)).json() == []
    made = await client.post(URL, headers=admin_headers)
    assert made.status_code == 201, made.text
    backup: dict[str, Any] = made.json()["backup"]
    assert backup["name"].startswith("mission-control-") and backup["checksum"] is True
    assert (ctx.settings.backups_path / backup["name"]).is_file()
    listed = (await client.get(URL, headers=admin_headers)).json()
    assert [b["name"] for b in listed] == [backup["name"]]

    verified = await client.post(f"{URL}/{backup['name']}/verify", headers=admin_headers)
    assert verified.json() == {
        "name": backup["name"],
        "ok": True,
        "message": "checksum and integrity ok",
    }
    # a damaged archive is reported, not a server error
    archive = ctx.settings.backups_path / backup["name"]
    archive.write_bytes(gzip.compress(b"not a database"))
    damaged = await client.post(f"{URL}/{backup['name']}/verify", headers=admin_headers)
    assert damaged.status_code == 200 and damaged.json()["ok"] is False
    assert "checksum" in damaged.json()["message"]
    audit = await ctx.db.fetch_all(
        "SELECT action, outcome FROM audit_log WHERE action LIKE 'backup.%' ORDER BY id"
    )
    assert [tuple(r) for r in audit] == [
        ("backup.create", "ok"),
        ("backup.verify", "ok"),
        ("backup.verify", "failed"),
    ]


async def test_backups_need_admin_and_a_backup_name(
    client: httpx.AsyncClient, make_token: TokenFactory, admin_headers: dict[str, str]
) -> None:
    operate = bearer(await make_token(Scope.OPERATE))
    assert_error_shape(await client.get(URL, headers=operate), 403, "insufficient_scope")
    assert_error_shape(await client.post(URL, headers=operate), 403, "insufficient_scope")
    for name in ("..%2F..%2Fmc.db", "mc.db", "mission-control-2026.db.gz"):
        refused = await client.post(f"{URL}/{name}/verify", headers=admin_headers)
        assert refused.status_code in (404, 422), (name, refused.text)
        assert "Traceback" not in refused.text
    missing = await client.post(
        f"{URL}/mission-control-20260101T000000Z.db.gz/verify", headers=admin_headers
    )
    assert_error_shape(missing, 404, "not_found")


async def test_the_health_page_shows_each_repair_with_its_fix(
    client: httpx.AsyncClient, admin_user: str
) -> None:
    forget_cache()
    await login(client, admin_user)
    html = (await client.get("/ui/health")).text
    assert 'id="repairs"' in html
    assert "No backup yet" in html and "mission-control-backup.service" in html
    assert 'href="/ui/backups"' in html
    assert "No worker is running" in html
    backups = (await client.get("/ui/backups")).text
    assert 'id="no-backup"' in backups and "backup restore" in backups


async def test_the_web_app_manifest_and_icons_are_public(client: httpx.AsyncClient) -> None:
    manifest = await client.get("/static/manifest.webmanifest")
    assert manifest.status_code == 200
    assert manifest.headers["content-type"] == "application/manifest+json"
    body = manifest.json()
    assert body["start_url"] == "/ui/" and body["display"] == "standalone"
    for icon in body["icons"]:
        answer = await client.get(icon["src"])
        assert answer.status_code == 200, icon
        assert answer.headers["content-type"] == icon["type"]
    login_page = (await client.get("/")).text
    assert 'rel="manifest" href="/static/manifest.webmanifest"' in login_page
