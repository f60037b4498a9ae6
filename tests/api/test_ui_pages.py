"""The web UI in-process: every page needs a session, every form carries CSRF,
no rendered page or template holds inline script or style (strict CSP)."""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.context import AppContext
from app.core.headers import CONTENT_SECURITY_POLICY
from app.main import PUBLIC_ROUTES, route_table
from app.security.principal import Scope
from app.ui.auth import safe_next
from app.ui.render import ASSETS, PUBLIC_ASSETS, STATIC_DIR, TEMPLATES_DIR, static_url
from tests.support.api import ADMIN_PASSWORD, TokenFactory, assert_error_shape, bearer, login

GITHUB = "ghp_0b2C6UXQx4skJiPGgOBGwXGSYZ5XDnWTroPa"
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def ui_routes(app: FastAPI) -> list[tuple[str, str]]:
    return [(m, p) for m, p in route_table(app) if p == "/" or p.startswith(("/ui", "/static"))]


class Page(HTMLParser):
    """What the CSP cares about in one HTML document, and its forms."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.forms: list[dict[str, str]] = []
        self.meta: dict[str, str] = {}
        self.ids: list[str] = []
        self.labels_for: set[str] = set()
        self.controls: list[dict[str, str]] = []
        self._in_script = False
        self._in_label = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for name, value in a.items():
            if name.startswith("on"):
                self.problems.append(f"event handler attribute {name} on <{tag}>")
            if name == "style":
                self.problems.append(f"style attribute on <{tag}>")
            if value.strip().lower().startswith("javascript:"):
                self.problems.append(f"javascript: URL in {name} of <{tag}>")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            if not a.get("src"):
                self.problems.append("inline <script>")
            else:
                self.scripts.append(a["src"])
            self._in_script = True
        if tag == "link" and a.get("rel") == "stylesheet":
            self.styles.append(a.get("href", ""))
        if tag == "meta" and a.get("name"):
            self.meta[a["name"]] = a.get("content", "")
        if tag == "form":
            self.forms.append(a)
        if tag == "button" and a.get("data-api"):  # a button that names its own endpoint
            method = a.get("data-method", "POST")
            self.forms.append({"data-api": a["data-api"], "data-method": method})
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "label":
            self._in_label += 1
            if a.get("for"):
                self.labels_for.add(a["for"])
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
            self.controls.append({**a, "_wrapped": "1" if self._in_label else ""})

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
        if tag == "label":
            self._in_label = max(0, self._in_label - 1)

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline script text")


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


# --- seeding ----------------------------------------------------------------------


async def seed(
    client: httpx.AsyncClient, headers: dict[str, str], ctx: AppContext
) -> dict[str, Any]:
    """An agent, a proposed mission, a task, a rule, a token and a notification."""
    agent = (
        await client.post(
            "/api/agents",
            json={
                "name": "scout",
                "role": "research",
                "model": "demo-1",
                "identity": "Be careful.",
            },
            headers=headers,
        )
    ).json()
    changed = await client.put(
        f"/api/agents/{agent['id']}/identity",
        json={"text": "Be careful.\nCite sources.", "reason": "sources", "expected_version": 1},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    mission = (
        await client.post(
            "/api/missions",
            json={
                "title": "Survey",
                "goal": "Survey the field",
                "steps": [{"title": "Read", "agent_id": agent["id"]}],
            },
            headers=headers,
        )
    ).json()
    task = (
        await client.post(
            "/api/tasks", json={"title": "Read the docs", "agent_id": agent["id"]}, headers=headers
        )
    ).json()
    rule = await client.post(
        "/api/rules",
        json={
            "name": "tell me",
            "on": "task.created",
            "then": [{"type": "notify", "category": "task", "title": "Task {subject_id}"}],
            "enabled": False,
        },
        headers=headers,
    )
    assert rule.status_code == 201, rule.text
    await ctx.db.fetch_one("SELECT 1")
    async with ctx.db.write() as conn:
        await conn.execute(
            "UPDATE conversations SET status = 'SUCCEEDED', transcript = ?, truncated = 1"
            " WHERE task_id = ?",
            (
                "token [REDACTED:github_token] found\n[TRUNCATED: output exceeded 5000000 bytes]",
                task["id"],
            ),
        )
        for reason in ("look at it", "and at this"):  # two: the page offers bulk actions
            await conn.execute(
                "INSERT INTO escalations (kind, subject_type, subject_id, reason, created_at)"
                " VALUES ('needs_review', 'task', ?, ?, '2026-01-01T00:00:00.000000Z')",
                (task["id"], reason),
            )
    run = await ctx.db.fetch_one("SELECT id FROM conversations WHERE task_id = ?", (task["id"],))
    assert run is not None
    return {
        "agent": agent,
        "mission": mission,
        "task": task,
        "rule": rule.json(),
        "run_id": int(run[0]),
    }


def page_paths(seeded: dict[str, Any]) -> list[str]:
    agent, mission, task = seeded["agent"]["id"], seeded["mission"]["id"], seeded["task"]["id"]
    return [
        "/ui/",
        "/ui/agents",
        f"/ui/agents/{agent}",
        f"/ui/agents/{agent}/identity",
        f"/ui/agents/{agent}/identity?from=0&to=2",
        "/ui/missions",
        "/ui/missions?status=proposed",
        "/ui/missions/new",
        f"/ui/missions/{mission}",
        "/ui/tasks",
        "/ui/tasks?status=queued",
        "/ui/tasks/new",
        f"/ui/tasks/{task}",
        f"/ui/runs/{seeded['run_id']}",
        "/ui/rules",
        "/ui/rules/new",
        f"/ui/rules/{seeded['rule']['id']}",
        "/ui/notifications",
        "/ui/notifications?show=all",
        "/ui/notifications/policy",
        "/ui/escalations",
        "/ui/escalations?status=all",
        "/ui/audit",
        "/ui/audit?action=agent.",
        "/ui/health",
        "/ui/backups",
        "/ui/vpn",
        "/ui/settings",
    ]


@pytest.fixture
async def seeded(
    client: httpx.AsyncClient, admin_headers: dict[str, str], ctx: AppContext
) -> dict[str, Any]:
    return await seed(client, admin_headers, ctx)


@pytest.fixture
async def session(client: httpx.AsyncClient, admin_user: str) -> str:
    response = await login(client, admin_user)
    assert response.status_code == 200
    return str(response.json()["csrf_token"])


# --- every page needs a session ----------------------------------------------------------


async def test_ui_routes_exist_and_only_the_login_page_is_public(app: FastAPI) -> None:
    routes = ui_routes(app)
    assert ("GET", "/ui/") in routes and ("GET", "/ui/agents/{agent_id}/identity") in routes
    public = {r for r in routes if r in PUBLIC_ROUTES}
    assert public == {("GET", "/")} | {("GET", f"/static/{n}") for n in PUBLIC_ASSETS}
    assert all(method == "GET" for method, _ in routes), "the UI's pages only read"


async def test_every_ui_page_refuses_without_a_session(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    for method, path in ui_routes(app):
        if (method, path) in PUBLIC_ROUTES:
            continue
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        assert_error_shape(await client.get(concrete), 401, "unauthenticated")
        # a browser is sent to the login page instead, with the same refusal as body
        browser = await client.get(concrete, headers=HTML)
        assert browser.status_code == 303, (path, browser.text)
        assert browser.headers["location"].startswith("/")
        assert browser.json()["error"]["code"] == "login_required"
        assert "content-security-policy" in browser.headers


async def test_a_browser_returns_to_the_page_after_login(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui/missions?status=proposed", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/?next=%2Fui%2Fmissions%3Fstatus%3Dproposed"
    login_page = await client.get(response.headers["location"])
    assert login_page.status_code == 200
    assert 'data-next="/ui/missions?status=proposed"' in login_page.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Cookie": "mc_session=forged"},
        {"Authorization": "Bearer mc_aaaaaaaaaa_" + "A" * 43},
        {"X-CSRF-Token": "anything"},
        {"Origin": "http://testserver", "Referer": "http://testserver/ui/"},
    ],
)
async def test_no_forged_header_opens_a_page(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for path in ("/ui/", "/ui/settings", "/ui/static/app.js"):
        assert (await client.get(path, headers=headers)).status_code == 401


async def test_an_api_token_does_not_open_the_ui(
    client: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    token = await make_token(Scope.ADMIN)
    response = await client.get("/ui/", headers=bearer(token))
    assert_error_shape(response, 401, "unauthenticated")
    assert "login session" in response.json()["error"]["message"]


async def test_an_ended_session_is_sent_back_to_login(
    client: httpx.AsyncClient, session: str
) -> None:
    assert (await client.get("/ui/", headers=HTML)).status_code == 200
    logout = await client.post("/api/auth/logout", headers={"X-CSRF-Token": session})
    assert logout.status_code == 204
    assert (await client.get("/ui/", headers=HTML)).status_code == 303
    assert (await client.get("/ui/")).status_code == 401


def test_login_redirects_only_to_local_ui_pages() -> None:
    assert safe_next("/ui/tasks/3") == "/ui/tasks/3"
    assert safe_next("/ui/missions?status=proposed") == "/ui/missions?status=proposed"
    for bad in (
        None,
        "",
        "https://evil.example/",
        "//evil.example/ui/",
        "/ui//evil.example",
        "/api/tokens",
        "/ui/../api/tokens",
        "/ui/\\evil",
        "javascript:alert(1)",
        "/ui/" + "a" * 400,
    ):
        assert safe_next(bad) == "/ui/", bad


async def test_login_page_is_public_and_a_session_skips_it(
    client: httpx.AsyncClient, admin_user: str
) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    doc = parse(page.text)
    assert doc.problems == []
    assert "csrf-token" not in doc.meta
    assert doc.forms and doc.forms[0].get("method") == "post"  # never credentials in a URL
    for name in PUBLIC_ASSETS:
        asset = await client.get(static_url(name))
        assert asset.status_code == 200 and asset.content == ASSETS[name].body
        assert "immutable" in asset.headers["cache-control"]
    await login(client, admin_user)
    again = await client.get("/?next=/ui/tasks")
    assert again.status_code == 303 and again.headers["location"] == "/ui/tasks"


async def test_ui_scripts_need_a_session(client: httpx.AsyncClient, admin_user: str) -> None:
    assert (await client.get(static_url("app.js"))).status_code == 401
    await login(client, admin_user)
    script = await client.get(static_url("app.js"))
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert (await client.get("/ui/static/nope.js")).status_code == 404
    assert (await client.get("/ui/static/..%2Fauth.py")).status_code == 404


# --- the pages themselves -------------------------------------------------------------------


async def test_every_page_renders_under_the_strict_csp(
    client: httpx.AsyncClient, seeded: dict[str, Any], session: str
) -> None:
    for path in page_paths(seeded):
        response = await client.get(path, headers=HTML)
        assert response.status_code == 200, (path, response.text[:500])
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["cache-control"] == "no-store"
        doc = parse(response.text)
        assert doc.problems == [], (path, doc.problems)
        assert doc.meta["csrf-token"] == session, path
        for src in doc.scripts + doc.styles:
            assert src.startswith(("/ui/static/", "/static/")), (path, src)
        duplicates = {i for i in doc.ids if doc.ids.count(i) > 1}
        assert not duplicates, (path, duplicates)
        for control in doc.controls:
            labelled = (
                control.get("id") in doc.labels_for
                or control["_wrapped"]
                or control.get("aria-label")
            )
            assert labelled, (path, control)


async def test_pages_show_the_state(
    client: httpx.AsyncClient, seeded: dict[str, Any], session: str
) -> None:
    agent = seeded["agent"]
    dashboard = (await client.get("/ui/")).text
    assert "scout" in dashboard and "Live events" in dashboard
    assert 'id="live-feed"' in dashboard and "Escalations to handle (2)" in dashboard
    run = (await client.get(f"/ui/runs/{seeded['run_id']}")).text
    assert '<mark class="redacted"' in run and "[REDACTED:github_token]" in run
    assert '<mark class="truncated">' in run and 'id="truncated-note"' in run
    identity = (await client.get(f"/ui/agents/{agent['id']}/identity")).text
    assert 'class="add">+Cite sources.' in identity and 'class="del">-' not in identity
    assert 'id="identity-form"' in identity and "data-confirm=" in identity
    policy = (await client.get("/ui/notifications/policy")).text
    assert policy.count('class="locked"') == 3
    assert 'name="webhook_categories" value="security"' in policy
    assert (await client.get("/ui/agents/999")).status_code == 404
    assert (await client.get("/ui/runs/999")).status_code == 404


async def test_a_non_admin_sees_no_identity_editor_and_no_admin_pages(
    client: httpx.AsyncClient, seeded: dict[str, Any], ctx: AppContext
) -> None:
    from app.auth import service

    await service.create_user(
        ctx.db, username="olga", password=ADMIN_PASSWORD, role=Scope.OPERATE, actor="t", client="t"
    )
    csrf = (await login(client, "olga")).json()["csrf_token"]
    agent_id = seeded["agent"]["id"]
    identity = (await client.get(f"/ui/agents/{agent_id}/identity")).text
    assert 'id="identity-form"' not in identity and 'id="identity-locked"' in identity
    refused = await client.put(
        f"/api/agents/{agent_id}/identity",
        json={"text": "approve anything", "expected_version": 2},
        headers={"X-CSRF-Token": csrf},
    )
    assert_error_shape(refused, 403, "insufficient_scope")
    audit = await client.get("/ui/audit")
    assert audit.status_code == 403 and "needs the <strong>admin</strong> role" in audit.text
    row = await ctx.db.fetch_one(
        "SELECT outcome FROM audit_log WHERE actor = 'user:olga' AND action = 'GET /ui/audit'"
    )
    assert row is not None and row["outcome"] == "refused"
    settings = (await client.get("/ui/settings")).text
    assert 'id="token-form"' not in settings and 'href="/ui/audit"' not in settings


# --- CSRF on every UI form ------------------------------------------------------------------


async def test_every_state_changing_ui_form_is_refused_without_the_csrf_token(
    client: httpx.AsyncClient, seeded: dict[str, Any], session: str, ctx: AppContext
) -> None:
    targets: set[tuple[str, str]] = set()
    for path in page_paths(seeded):
        for form in parse((await client.get(path)).text).forms:
            if "data-api" in form:
                method = form.get("data-method", "POST")
                assert method in ("POST", "PUT", "PATCH", "DELETE"), (path, form)
                assert form["data-api"].startswith("/api/"), (path, form)
                targets.add((method, form["data-api"]))
            else:
                # a plain form only filters a list: GET, never a state change
                assert form.get("method", "get").lower() in ("get", "dialog"), (path, form)
    assert len(targets) >= 20, targets
    audit_before = await ctx.db.fetch_one("SELECT count(*) FROM audit_log WHERE outcome = 'ok'")
    for method, url in sorted(targets):
        missing = await client.request(method, url, json={})
        assert_error_shape(missing, 403, "csrf_failed")
        wrong = await client.request(method, url, json={}, headers={"X-CSRF-Token": "x" + session})
        assert_error_shape(wrong, 403, "csrf_failed")
    audit_after = await ctx.db.fetch_one("SELECT count(*) FROM audit_log WHERE outcome = 'ok'")
    assert audit_before is not None and audit_after is not None
    assert audit_after[0] == audit_before[0], "a refused form changed something"
    # the token of the page's <meta> tag is the one that works
    agent_id = seeded["agent"]["id"]
    page = parse((await client.get(f"/ui/agents/{agent_id}")).text)
    paused = await client.post(
        f"/api/agents/{agent_id}/pause", headers={"X-CSRF-Token": page.meta["csrf-token"]}
    )
    assert paused.status_code == 200 and paused.json()["status"] == "paused"


async def test_the_feed_gets_its_ticket_with_the_csrf_token(
    client: httpx.AsyncClient, session: str
) -> None:
    assert_error_shape(await client.post("/api/events/ticket"), 403, "csrf_failed")
    ticket = await client.post("/api/events/ticket", headers={"X-CSRF-Token": session})
    assert ticket.status_code == 200 and ticket.json()["ticket"]


# --- the files themselves -----------------------------------------------------------------------

_INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "inline <script>"),
    (re.compile(r"<style\b", re.I), "<style> element"),
    (re.compile(r"\sstyle\s*=", re.I), "style attribute"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "event handler attribute"),
    (re.compile(r"javascript:", re.I), "javascript: URL"),
]


def test_no_template_holds_inline_script_or_style() -> None:
    templates = sorted(TEMPLATES_DIR.glob("*.html"))
    assert len(templates) >= 20
    for path in templates:
        text = path.read_text()
        for pattern, what in _INLINE:
            assert not pattern.search(text), f"{path.name}: {what}"


def test_no_script_evaluates_strings_or_writes_markup() -> None:
    scripts = sorted(STATIC_DIR.glob("*.js"))
    assert {p.name for p in scripts} >= {"app.js", "login.js", "live.js"}
    forbidden = re.compile(
        r"\beval\s*\(|new\s+Function\s*\(|innerHTML|outerHTML|insertAdjacentHTML|document\.write"
        r"|setTimeout\s*\(\s*['\"]|localStorage|sessionStorage|indexedDB|document\.cookie|\.style\."
    )
    for path in scripts:
        text = path.read_text()
        assert not forbidden.search(text), f"{path.name}: {forbidden.search(text)}"
    assert "X-CSRF-Token" in (STATIC_DIR / "app.js").read_text()
    # assets are served from memory and only these kinds exist
    assert {Path(n).suffix for n in ASSETS} <= {".css", ".js", ".svg", ".png", ".webmanifest"}


def _luminance(hex_colour: str) -> float:
    value = hex_colour.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_the_palette_meets_wcag_aa_contrast() -> None:
    css = (STATIC_DIR / "app.css").read_text()
    root = css[css.index(":root") : css.index("}", css.index(":root"))]
    colour = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{3,6})", root))
    pairs = [
        ("fg", "bg"),
        ("muted", "bg"),
        ("muted", "panel"),
        ("fg", "panel"),
        ("accent", "bg"),
        ("accent", "panel"),
        ("accent-fg", "accent"),
        ("ok", "ok-bg"),
        ("warn", "warn-bg"),
        ("bad", "bad-bg"),
        ("bad", "bg"),
        ("info", "info-bg"),
    ]
    for fg, bg in pairs:
        ratio = contrast(colour[fg], colour[bg])
        assert ratio >= 4.5, (fg, bg, round(ratio, 2))
    assert contrast("#ffffff", colour["top"]) >= 4.5  # the header's text
    assert contrast("#1a1a1a", "#ffd54f") >= 4.5  # the nav's counters


async def test_settings_lists_vpn_peers_read_only(
    client: httpx.AsyncClient, session: str, ctx: AppContext, tmp_path: Path
) -> None:
    status_file = tmp_path / "peers.json"
    ctx.settings.vpn_status_path = status_file
    page = (await client.get("/ui/settings")).text
    assert "No peer status yet" in page
    now = int(time.time())
    status_file.write_text(
        json.dumps(
            {
                "interface": "wg0",
                "up": True,
                "generated_at": now - 30,
                "peers": [
                    {
                        "name": "phone",
                        "address": "10.8.0.2",
                        "latest_handshake": now - 90,
                        "rx_bytes": 2048,
                        "tx_bytes": 0,
                    },
                    {"name": "<b>x</b>", "address": "10.8.0.3", "latest_handshake": 0},
                ],
            }
        )
    )
    page = (await client.get("/ui/settings")).text
    assert "phone" in page and "10.8.0.2" in page and "1 min ago" in page and "never" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "stale" not in page
    doc = parse(page)
    assert not any(f.get("data-api", "").startswith("/api/vpn") for f in doc.forms)
    status_file.write_text("{not json")
    assert "not in the expected format" in (await client.get("/ui/settings")).text
