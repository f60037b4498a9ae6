"""The web UI in real headless Chromium against a real server and worker.

The flow of the issue: log in, create an agent, propose a mission and have a
second user approve it, create a task (after seeing its failed pre-flight checks
next to their fields), see it wait because its run would get a shell and an admin
approve it from the task page, and watch its run appear on the live feed, see the
credential the agent leaked redacted in the transcript, be refused an identity
edit as a non-admin, log out. Then every main page: CSP header present, a
screenshot, and no console error or CSP violation anywhere in the module.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

import pytest

from app.core.headers import CONTENT_SECURITY_POLICY
from tests.support.browser import (
    LEAKED,
    PASSWORD,
    SCREENSHOTS,
    Console,
    Server,
    record_figures,
)

expect = pytest.importorskip("playwright.sync_api").expect

RUN_MS = 25_000  # a worker poll, an agent run and a feed poll, with margin


def shot(page: Any, name: str, *, full: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full)


def log_in(page: Any, user: str, password: str = PASSWORD) -> None:
    page.context.clear_cookies()  # a fresh session (a logged-in browser skips the form)
    page.goto("/")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/ui/")


def log_out(page: Any) -> None:
    page.locator("#logout").click()
    page.wait_for_url(re.compile(r"/$"))
    assert page.get_by_label("User name").is_visible()


def approve_held_task(page: Any, task_id: int, title: str) -> None:
    """bob's shell task waits (no approve button for him); alice follows the security
    notification's link to the task page and approves it; bob is back."""
    page.locator("#task-pending").wait_for()
    assert page.locator("#approve-form").count() == 0
    assert page.locator("#task-runs a[href^='/ui/runs/']").count() == 0
    log_in(page, "alice")
    page.goto("/ui/notifications")
    page.get_by_role("link", name=f"Shell task waits for approval: {title}").first.click()
    page.wait_for_url(re.compile(rf"/ui/tasks/{task_id}#h-approval$"))
    shot(page, "task-held-for-approval")
    page.get_by_role("button", name="Approve", exact=True).click()
    page.locator("#task-approved").wait_for()
    assert "user:alice" in page.locator("#task-approved").inner_text()
    log_in(page, "bob")
    page.goto(f"/ui/tasks/{task_id}")


def confirm(page: Any) -> None:
    dialog = page.locator("#confirm-dialog")
    dialog.wait_for(state="visible")
    dialog.locator("#confirm-ok").click()


def path_of(page: Any) -> str:
    return "/" + page.url.split("/", 3)[3]


def test_the_issue_flow(browser: Any, server: Server, console: Console) -> None:
    page = browser.new_page()

    # --- log in (a wrong password first) --------------------------------------------------
    page.goto("/")
    shot(page, "login")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("not the password")
    with console.expect_refusal("/api/auth/login", 401):
        page.get_by_role("button", name="Log in").click()
        page.locator("#login-error").wait_for()
    assert page.locator("#login-error").inner_text() == "Wrong user name or password."
    assert "password" not in page.url and "alice" not in page.url
    log_in(page, "alice")
    cookie = next(c for c in browser.cookies() if c["name"] == "mc_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # --- create an agent (admin) --------------------------------------------------------
    page.goto("/ui/agents")
    page.get_by_label("Name", exact=True).fill("scout")
    page.get_by_label("Role").fill("researcher")
    page.get_by_label("Command profile").select_option("leaky")
    page.get_by_label("Identity (system prompt)").fill("You are careful.\nCite every source.")
    page.get_by_role("button", name="Create agent").click()
    page.wait_for_url(re.compile(r"/ui/agents/\d+$"))
    agent_id = int(page.url.rsplit("/", 1)[1])
    assert page.locator("h1").inner_text() == "Agent scout"

    # --- propose a mission: a bound above its ceiling is refused next to its field -------------
    page.goto("/ui/missions/new")
    page.get_by_label("Title", exact=True).fill("Survey the field")
    page.get_by_label("Goal").fill("Collect and summarise the sources.")
    page.get_by_label("Step title").fill("Collect sources")
    page.get_by_label("Agent").select_option(str(agent_id))
    page.get_by_label("Cost, USD").fill("50")
    with console.expect_refusal("/api/missions", 422):
        page.get_by_role("button", name="Propose mission").click()
        error = page.locator('[data-error-for="bounds.cost_usd"]')
        error.wait_for()
    assert "above the ceiling" in error.inner_text()
    assert page.get_by_label("Cost, USD").get_attribute("aria-invalid") == "true"
    shot(page, "mission-proposal-refused")
    page.get_by_label("Cost, USD").fill("2")
    page.get_by_role("button", name="Propose mission").click()
    page.wait_for_url(re.compile(r"/ui/missions/\d+$"))
    mission_url = path_of(page)
    # alice is the only admin: she could approve it herself with her password, held
    # for the cooling-off period (tests/browser/test_one_owner_approval.py); here bob does
    assert page.locator("#approval-mode").get_attribute("data-mode") == "one_owner"
    assert page.get_by_label("Your password").is_visible()
    log_out(page)

    # --- a second human approves it ----------------------------------------------------------
    log_in(page, "bob")
    feed = browser.new_page()
    feed.goto("/ui/")
    # (Playwright's wait_for_function evaluates a string: the CSP rightly forbids that)
    feed.locator("#live-state", has_text="Live:").wait_for()
    page.goto(mission_url)
    assert page.locator("#self-approval").count() == 0
    page.get_by_label("Comment (optional)").fill("bounded and useful")
    page.get_by_role("button", name="Approve").click()
    page.get_by_role("link", name="Start this step as a task").wait_for()
    assert "approved" in page.locator("main p").first.inner_text()
    shot(page, "mission")

    # --- create a task: every failed pre-flight check next to its field ---------------------------
    page.get_by_role("link", name="Start this step as a task").click()
    page.wait_for_url(re.compile(r"/ui/tasks/new\?"))
    page.get_by_label("Description").fill(f"Use the deploy key {LEAKED} if needed.")
    page.get_by_label("Due (your local time)").fill("2020-01-01T10:00")
    with console.expect_refusal("/api/tasks", 422):
        page.get_by_role("button", name="Create task").click()
        page.locator('[data-error-for="title"]:not([hidden])').wait_for()
    errors = {
        name: page.locator(f'[data-error-for="{name}"]').inner_text()
        for name in ("title", "description", "due_at")
    }
    assert errors["title"] == "The title must not be empty."
    assert page.locator('[data-error-for="title"] [data-check-code="title_length"]').count() == 1
    assert "(check:" not in page.locator("main").inner_text()
    assert "credential" in errors["description"]
    assert "future" in errors["due_at"]
    assert page.get_by_label("Description").get_attribute("aria-invalid") == "true"
    shot(page, "task-preflight-refused")
    page.get_by_label("Title", exact=True).fill("Collect sources")
    page.get_by_label("Description").fill("List the three best sources.")
    page.get_by_label("Due (your local time)").fill("")
    page.get_by_role("button", name="Create task").click()
    page.wait_for_url(re.compile(r"/ui/tasks/\d+$"))
    task_id = int(page.url.rsplit("/", 1)[1])
    # scout's profile always runs commands, and bob is no admin: a shell needs a
    # person, so the task waits until alice approves it from its page
    approve_held_task(page, task_id, "Collect sources")

    # --- ... and watch its run on the live feed ------------------------------------------------
    feed.locator(
        f'#live-feed li:has-text("task.created"):has(a[href="/ui/tasks/{task_id}"])'
    ).wait_for()
    done = feed.locator('#live-feed li:has-text("conversation.succeeded")')
    done.wait_for(timeout=RUN_MS)
    assert feed.locator('#live-feed li:has-text("conversation.started")').count() >= 1
    feed.locator("#summary-runs").wait_for()
    shot(feed, "dashboard-live")
    done.locator("a").first.click()
    feed.wait_for_url(re.compile(r"/ui/runs/\d+$"))

    # --- the leaked credential is redacted in the transcript -----------------------------------
    marker = feed.locator("#transcript mark.redacted")
    assert marker.inner_text() == "[REDACTED:github_token]"
    assert feed.locator("#redacted-note").is_visible()
    assert LEAKED not in feed.content()
    shot(feed, "run-redacted")
    feed.close()

    # a flooded run is cut at the cap: the marker shows, and an escalation opens
    page.goto(f"/ui/tasks/new?agent_id={agent_id}")
    page.get_by_label("Title", exact=True).fill("Flood the output")
    page.get_by_label("Description").fill("FLOOD")
    page.get_by_role("button", name="Create task").click()
    page.wait_for_url(re.compile(r"/ui/tasks/\d+$"))
    approve_held_task(page, int(page.url.rsplit("/", 1)[1]), "Flood the output")
    run_link = page.locator("#task-runs a[href^='/ui/runs/']").first
    for _ in range(RUN_MS // 500):
        if page.locator("#task-runs .badge", has_text="failed").count():
            break
        page.wait_for_timeout(500)
        page.reload()
    run_link.click()
    assert page.locator("#transcript mark.truncated").inner_text().startswith("[TRUNCATED:")
    assert page.locator("#truncated-note").is_visible()
    shot(page, "run-truncated")
    page.goto("/ui/escalations")
    item = page.locator("li[id^='escalation-']", has_text="output cap").first
    item.get_by_role("button", name="Acknowledge").click()
    page.wait_for_load_state()
    item = page.locator("li[id^='escalation-']", has_text="output cap").first
    item.locator(".badge", has_text="acknowledged").wait_for()
    item.get_by_label("How it was resolved").fill("expected: a test flooded the output")
    item.get_by_role("button", name="Resolve").click()
    confirm(page)
    expect(page.locator("li[id^='escalation-']", has_text="output cap")).to_have_count(0)
    page.goto("/ui/escalations?status=resolved")
    resolved = page.locator("li[id^='escalation-']", has_text="output cap").first
    expect(resolved).to_contain_text("expected: a test flooded the output")

    # --- a non-admin is refused an identity edit -----------------------------------------
    page.goto(f"/ui/agents/{agent_id}/identity")
    assert page.locator("#identity-locked").is_visible()
    assert page.locator("#identity-form").count() == 0
    with console.expect_refusal(f"/api/agents/{agent_id}/identity", 403):
        outcome = page.evaluate(
            """async (id) => {
                try {
                    await MC.api('PUT', '/api/agents/' + id + '/identity',
                                 {text: 'Approve everything.', expected_version: 1});
                    return 'accepted';
                } catch (e) { return e.status + ' ' + e.code; }
            }""",
            agent_id,
        )
    assert outcome == "403 insufficient_scope"
    shot(page, "identity-refused")

    # --- log out: the UI is closed again ----------------------------------------------------------
    log_out(page)
    page.goto("/ui/tasks")
    assert path_of(page) == "/?next=%2Fui%2Ftasks"
    assert page.get_by_label("User name").is_visible()
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0

    # --- an admin changes the identity: review the diff, confirm, a new version -----------
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/ui/tasks")
    page.goto(f"/ui/agents/{agent_id}/identity")
    assert page.locator("#identity-save").is_disabled()
    page.get_by_label("New text").fill("You are careful.\nCite every source.\nNever guess.")
    page.get_by_label("Reason for the change").fill("no guessing")
    page.get_by_role("button", name="Review change").click()
    assert page.locator("#identity-diff .add").inner_text() == "+ Never guess."
    assert page.locator("#identity-summary").inner_text().startswith("1 line(s) added")
    page.locator("#identity-save").click()
    confirm(page)
    page.locator("tr", has_text="v2").locator(".badge", has_text="current").wait_for()
    assert "Never guess." in page.locator("#identity-current").inner_text()
    shot(page, "identity")
    page.close()
    console.assert_clean()
    assert ("/api/tasks", 422) in console.seen_allowed


MAIN_PAGES = [
    ("dashboard", "/ui/"),
    ("agents", "/ui/agents"),
    ("missions", "/ui/missions"),
    ("tasks", "/ui/tasks"),
    ("rules", "/ui/rules"),
    ("notifications", "/ui/notifications"),
    ("policy", "/ui/notifications/policy"),
    ("escalations", "/ui/escalations?status=all"),
    ("audit", "/ui/audit"),
    ("health", "/ui/health"),
    ("settings", "/ui/settings"),
]


def test_every_page_has_the_csp_and_nothing_breaks_it(
    browser: Any, server: Server, console: Console
) -> None:
    page = browser.new_page()
    log_in(page, "alice")
    # the violation listener is live: a script written into the page is blocked and reported
    probe = browser.new_page()
    console.mute(probe)
    probe.goto("/")
    reported: list[str] = []
    probe.on("console", lambda m: reported.append(m.text))
    probe.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.pwned = 1'; document.body.append(s); }"
    )
    probe.wait_for_timeout(200)
    assert probe.evaluate("window.pwned") is None
    assert any(t.startswith("securitypolicyviolation: script-src") for t in reported)
    probe.close()

    for name, path in MAIN_PAGES:
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        if name == "audit":
            page.locator("#chain-status.ok").wait_for()
            assert page.locator("#chain-status").inner_text().startswith("Intact")
        shot(page, name)
    # a run, a task and an agent
    page.goto("/ui/tasks")
    page.locator(".board a[href^='/ui/tasks/']").first.click()
    shot(page, "task")
    page.locator("#task-runs a[href^='/ui/runs/']").first.click()
    shot(page, "run")
    page.goto("/ui/agents")
    page.locator("td a[href^='/ui/agents/']").first.click()
    shot(page, "agent")

    # rules: the builder (no JSON), then a dry run
    page.goto("/ui/rules/new")
    page.get_by_label("Name").fill("tell me about failures")
    page.get_by_label("When this event happens").select_option("conversation.failed")
    page.get_by_role("button", name="Add a condition").click()
    page.locator("select[name$='.field']").select_option("payload.reason")
    page.locator("select[name$='.op']").select_option("contains")
    page.locator("input[name^='when.'][name$='.value']").fill("output_cap")
    page.locator("#a-0-ntitle").fill("Run {subject_id} was cut")
    page.get_by_label("Enable at once").check()
    shot(page, "rule-builder")
    page.get_by_role("button", name="Create rule").click()
    page.wait_for_url(re.compile(r"/ui/rules/\d+$"))
    page.get_by_label("Subject id").fill("7")
    page.get_by_label(re.compile("Event payload")).fill("reason=output_cap: stdout exceeded")
    page.get_by_role("button", name="Try it").click()
    page.locator("#dry-run-result .notice").wait_for()
    assert page.locator("#dry-run-result .notice").inner_text() == "This event would fire the rule."
    shot(page, "rule-dry-run")

    # an API token is shown once, then never again
    page.goto("/ui/settings")
    page.get_by_label("Name", exact=True).fill("backup script")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#new-token")
    secret.wait_for()
    token = secret.inner_text()
    assert token.startswith("mc_")
    page.reload()
    assert token not in page.content()
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0

    # a phone-width screen
    page.set_viewport_size({"width": 390, "height": 844})
    for name, path in (("dashboard", "/ui/"), ("tasks", "/ui/tasks"), ("mission", "/ui/missions")):
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (path, overflow)
        shot(page, f"phone-{name}")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.close()
    console.assert_clean()


# ms from navigation start to the first paint with content (paint timing), once reported
FIRST_PAINT = """() => new Promise((resolve) => {
  new PerformanceObserver((list) => {
    const entry = list.getEntriesByName('first-contentful-paint')[0];
    if (entry) resolve(entry.startTime);
  }).observe({ type: 'paint', buffered: true });
  setTimeout(() => resolve(null), 3000);
})"""


def test_dashboard_weight_and_time_to_first_render(
    browser: Any, server: Server, console: Console
) -> None:
    page = browser.new_page()
    log_in(page, "alice")
    renders: list[float] = []
    for _ in range(7):
        page.goto("/ui/", wait_until="load")
        paint = page.evaluate(FIRST_PAINT)
        if paint is None:
            pytest.fail("Chromium reported no first-contentful-paint")
        renders.append(float(paint))
    urls = page.evaluate(
        "[location.pathname, ...[...document.scripts].map(s => s.src),"
        " ...[...document.querySelectorAll('link[rel=stylesheet]')].map(l => l.href)]"
    )
    sizes = {url: len(page.request.get(url).body()) for url in urls}
    weight = sum(sizes.values())
    median = statistics.median(renders)
    record_figures(
        dashboard_bytes=weight,
        dashboard_parts={re.sub(r"^https?://[^/]+", "", u): n for u, n in sizes.items()},
        dashboard_first_render_ms_median=round(median, 1),
        dashboard_first_render_ms_all=[round(r, 1) for r in renders],
        screenshots=sorted(p.name for p in SCREENSHOTS.glob("*.png")),
    )
    print(f"\ndashboard: {weight} bytes (HTML+JS+CSS); first render median {median:.1f} ms")
    assert weight < 60_000  # small enough for a phone over a VPN
    assert median < 2_000
    page.close()
    console.assert_clean()
