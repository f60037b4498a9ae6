"""Every form of the web UI, submitted in real Chromium, and what the server stored.

Checking a form's HTML is not enough: the policy form once rendered the locked
``security`` category correctly and still left it out of what it sent, so every
save was refused. Each step here fills a form as a person would, submits it, and
reads the row back from the server's database. ``FORMS`` lists every form of
``app/ui/templates``; a form added there without a step here fails
``test_every_form_of_the_templates_is_submitted``.

No worker runs in this module: tasks stay queued, so a task can be cancelled and
another deleted without racing an agent run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import Console, Server
from tests.support.ui import PASSWORD, Stored, confirm, id_from_url, log_in, shot

expect = pytest.importorskip("playwright.sync_api").expect

UI_WORKER = False
TEMPLATES = Path(__file__).resolve().parents[2] / "app" / "ui" / "templates"
NEW_PASSWORD = "a new and longer passphrase"

#: (template, data-api of the form) -> the step of this module that submits it
FORMS: dict[tuple[str, str], str] = {
    ("login.html", "login-form"): "login",
    ("base.html", "/api/auth/logout"): "logout",
    ("agents.html", "/api/agents"): "agent create",
    ("agent.html", "/api/agents/{}/pause"): "agent pause",
    ("agent.html", "/api/agents/{}/resume"): "agent resume",
    ("agent.html", "/api/agents/{}"): "agent retire",
    ("agent.html", "/api/agents/{}/memory"): "agent memory",
    ("identity.html", "/api/agents/{}/identity"): "identity change",
    ("identity.html", "/api/agents/{}/identity/revert"): "identity revert",
    ("mission_new.html", "/api/missions"): "mission propose",
    # the approval panel of the mission and rule pages ({} = missions or rules)
    # (a held shell task's: tests/browser/test_ui_flow.py)
    ("_approval.html", "/api/{}s/{}/approve"): "mission approve, rule approve",
    ("mission.html", "/api/missions/{}/reject"): "mission reject",
    ("mission.html", "/api/missions/{}/cancel"): "mission cancel",
    ("task_new.html", "/api/tasks"): "task create",
    ("task.html", "/api/tasks/{}/cancel"): "task cancel",
    ("task.html", "/api/tasks/{}"): "task delete",
    ("rule_new.html", "/api/rules"): "rule create",
    ("rule.html", "/api/rules/{}"): "rule enable, disable, delete",
    ("rule.html", "/api/rules/{}/dry-run"): "rule dry run",
    ("notifications.html", "/api/notifications/read-all"): "notifications read all",
    ("notifications.html", "/api/notifications/{}/read"): "notification read",
    ("policy.html", "/api/policies/notifications"): "policy",
    ("escalations.html", "/api/escalations/{}/acknowledge"): "escalation acknowledge",
    ("escalations.html", "/api/escalations/{}/resolve"): "escalation resolve",
    ("escalations.html", "/api/escalations/resolve"): "escalations bulk",
    ("escalations.html", "/api/escalations/acknowledge"): "escalations bulk",
    ("settings.html", "/api/auth/password"): "password change",
    ("settings.html", "/api/tokens"): "token create",
    ("settings.html", "/api/tokens/{}"): "token revoke",
    ("settings.html", "/api/users/{}"): "user change",
    ("settings.html", "/api/users"): "user create",
    ("backups.html", "/api/backups"): "backup create",
    ("backups.html", "/api/backups/{}/verify"): "backup verify",
    # the schedule forms are submitted by tests/browser/test_schedules_ui.py
    ("schedules.html", "/api/schedules"): "schedule create",
    ("schedule.html", "/api/schedules/{}/pause"): "schedule pause",
    ("schedule.html", "/api/schedules/{}/resume"): "schedule resume",
    ("schedule.html", "/api/schedules/{}/run"): "schedule run now",
    # submitted by tests/browser/test_data_ui.py (memory and documents, their versions)
    ("agent.html", "/api/agents/{}/memory/{}"): "memory remove",
    ("projects.html", "/api/projects"): "project create",
    ("project.html", "/api/projects/{}/documents"): "document add",
    ("project.html", "/api/projects/{}/documents/{}"): "document remove",
    # submitted by tests/browser/test_one_owner_approval.py (one-owner mode, TOTP)
    ("_approval.html", "/api/{}s/{}/veto"): "approval veto",
    ("account.html", "/api/auth/totp/disable"): "second factor off",
    # submitted by tests/browser/test_vpn_page.py (the root helper on a test socket)
    ("vpn.html", "/api/vpn/peers"): "vpn peer add",
    ("vpn.html", "/api/vpn/peers/{}"): "vpn peer revoke",
    # submitted by tests/browser/test_live_output.py (it needs a finished run)
    ("run.html", "/api/conversations/{}/follow-up"): "run reply",
    # submitted by tests/browser/test_review_ui.py (it needs a review waiting for a person)
    ("_review.html", "/api/tasks/{}/review"): "task review",
    # submitted by tests/browser/test_notify_channels_ui.py (it needs a running notifier)
    ("notify_channels.html", "/api/notifications/channels/{}/test"): "channel send test",
}


def template_forms() -> set[tuple[str, str]]:
    """(template, endpoint) of every form (and every button naming its own endpoint)."""
    found: set[tuple[str, str]] = set()
    for template in sorted(TEMPLATES.glob("*.html")):
        text = template.read_text()
        for match in re.finditer(r"<(?:form|button)\b[^>]*\bdata-api=\"([^\"]+)\"", text):
            found.add((template.name, re.sub(r"\{\{[^}]*\}\}", "{}", match.group(1))))
        if 'id="login-form"' in text:
            found.add((template.name, "login-form"))
    return found


def test_every_form_of_the_templates_is_submitted() -> None:
    assert template_forms() == set(FORMS)


@pytest.fixture(scope="module")
def stored(server: Server) -> Stored:
    return Stored(server.root / "mc.db")


def submit(page: Any, button: str, *, confirmed: bool = False, exact: bool = True) -> None:
    page.get_by_role("button", name=button, exact=exact).click()
    if confirmed:
        confirm(page)


def settle(page: Any) -> None:
    """Wait for the reload (or redirect) a successful form makes."""
    page.wait_for_load_state("load")
    page.locator("main h1").wait_for()


def test_the_owner_s_forms_store_what_they_show(
    browser: Any, server: Server, console: Console, stored: Stored
) -> None:
    page = browser.new_page()

    # --- login ---------------------------------------------------------------------------
    before = stored.count("sessions")
    log_in(page, "alice")
    assert stored.count("sessions") == before + 1
    alice_id = stored.value("SELECT id FROM users WHERE username = 'alice'")
    assert stored.count("sessions", "user_id = ?", (alice_id,)) >= 1

    # --- agents ----------------------------------------------------------------------------
    page.goto("/ui/agents")
    page.get_by_label("Role").fill("note taker")
    # a mistake is said in plain words next to its field, naming it and the fix
    page.get_by_label("Name", exact=True).fill("notes/agent")
    with console.expect_refusal("/api/agents", 422):
        submit(page, "Create agent")
        error = page.locator('[data-error-for="name"]:not([hidden])')
        error.wait_for()
    assert error.inner_text() == (
        "Name holds characters that are not allowed: use letters, digits, dots, dashes"
        " and underscores."
    )
    assert page.get_by_label("Name", exact=True).get_attribute("aria-invalid") == "true"
    assert page.locator(".form-error").inner_text().startswith("Not saved: one thing")
    page.get_by_label("Name", exact=True).fill("scribe")
    page.get_by_label("web search").check()
    page.get_by_label("Runs per day").fill("7")
    page.get_by_label("Identity (system prompt)").fill("Write it down.")
    submit(page, "Create agent")
    page.wait_for_url(re.compile(r"/ui/agents/\d+$"))
    agent_id = id_from_url(page)
    agent = stored.one("SELECT * FROM agents WHERE id = ?", (agent_id,))
    assert (agent["name"], agent["role"], agent["profile"]) == ("scribe", "note taker", "demo")
    assert json.loads(agent["allowed_tools"]) == ["web_search"]
    assert agent["quota_runs_per_day"] == 7 and agent["shell_access"] == 0
    assert agent["identity_version"] == 1
    assert stored.value(
        "SELECT text FROM agent_identities WHERE agent_id = ? AND version = 1", (agent_id,)
    ) == ("Write it down.")

    memory = page.get_by_label("Add a memory entry")
    memory.evaluate("box => box.removeAttribute('maxlength')")
    memory.fill("n" * 20_001)
    with console.expect_refusal(f"/api/agents/{agent_id}/memory", 422):
        submit(page, "Add")
        error = page.locator('[data-error-for="content"]:not([hidden])')
        error.wait_for()
    assert error.inner_text() == (
        "Add a memory entry is too long: at most 20000 characters. Shorten it."
    )
    assert "String should" not in page.locator("main").inner_text()
    memory.fill("The owner likes short notes.")
    submit(page, "Add")
    page.get_by_text("The owner likes short notes.").wait_for()
    assert stored.value("SELECT content FROM agent_memory WHERE agent_id = ?", (agent_id,)) == (
        "The owner likes short notes."
    )

    submit(page, "Pause", confirmed=True)
    page.get_by_role("button", name="Resume").wait_for()
    assert stored.value("SELECT status FROM agents WHERE id = ?", (agent_id,)) == "paused"
    submit(page, "Resume")
    page.get_by_role("button", name="Pause").wait_for()
    assert stored.value("SELECT status FROM agents WHERE id = ?", (agent_id,)) == "active"

    # --- identity: change, then revert ----------------------------------------------------------
    page.goto(f"/ui/agents/{agent_id}/identity")
    page.get_by_label("New text").fill("Write it down.\nKeep it short.")
    page.get_by_label("Reason for the change").fill("shorter notes")
    submit(page, "Review change")
    page.locator("#identity-save").click()
    confirm(page)
    page.locator("tr", has_text="v2").locator(".badge", has_text="current").wait_for()
    v2 = stored.one(
        "SELECT text, reason, created_by FROM agent_identities WHERE agent_id = ? AND version = 2",
        (agent_id,),
    )
    assert tuple(v2) == ("Write it down.\nKeep it short.", "shorter notes", "user:alice")
    submit(page, "Revert to v1", confirmed=True)
    page.locator("tr", has_text="v3").locator(".badge", has_text="current").wait_for()
    assert stored.value(
        "SELECT text FROM agent_identities WHERE agent_id = ? AND version = 3", (agent_id,)
    ) == ("Write it down.")

    # --- missions: propose two; bob approves one and rejects the other, then cancels ------------
    missions = []
    for title in ("Gather notes", "Burn the notes"):
        page.goto("/ui/missions/new")
        page.get_by_label("Title", exact=True).fill(title)
        page.get_by_label("Goal").fill(f"{title}, carefully.")
        page.get_by_label("Step title").fill("Read")
        page.get_by_label("Agent").select_option(str(agent_id))
        page.get_by_label("Instructions").fill("Read the notes folder.")
        page.get_by_label("Cost, USD").fill("1.5")
        page.get_by_label("Tokens").fill("20000")
        if title == "Gather notes":
            # a step may wait for a person and be reviewed; never by its own agent
            page.get_by_label("Pause before this step").check()
            page.get_by_label("Reviewed by").select_option(str(agent_id))
            with console.expect_refusal("/api/missions", 422):
                submit(page, "Propose mission")
                error = page.locator('[data-error-for="steps.0.review"]:not([hidden])')
                error.wait_for()
            assert "another agent than the step's own agent" in error.inner_text()
            page.get_by_label("Reviewed by").select_option("")
            page.get_by_label("Person's review").select_option("true")
            page.get_by_label("Review rounds").fill("2")
        submit(page, "Propose mission")
        page.wait_for_url(re.compile(r"/ui/missions/\d+$"))
        missions.append(id_from_url(page))
    row = stored.one("SELECT * FROM missions WHERE id = ?", (missions[0],))
    assert (row["title"], row["goal"], row["status"]) == (
        "Gather notes",
        "Gather notes, carefully.",
        "proposed",
    )
    assert (row["bound_cost_usd"], row["bound_tokens"]) == (1.5, 20000)
    steps = json.loads(row["steps"])
    assert [(s["title"], s["agent_id"], s["instructions"]) for s in steps] == [
        ("Read", agent_id, "Read the notes folder.")
    ]
    assert (steps[0]["pause_before"], steps[0]["review"]) == (
        True,
        {"agent_id": None, "human": True, "max_cycles": 2},
    )
    other = json.loads(stored.value("SELECT steps FROM missions WHERE id = ?", (missions[1],)))
    assert (other[0]["pause_before"], other[0]["review"]) == (False, None)

    log_in(page, "bob")
    page.goto(f"/ui/missions/{missions[0]}")
    page.get_by_label("Comment (optional)").fill("fine by me")
    submit(page, "Approve")
    page.get_by_role("button", name="Cancel mission").wait_for()
    row = stored.one(
        "SELECT status, decided_by, decision_comment FROM missions WHERE id = ?", (missions[0],)
    )
    assert tuple(row) == ("approved", "user:bob", "fine by me")
    page.goto(f"/ui/missions/{missions[1]}")
    page.get_by_label("Reason for rejecting").fill("no burning")
    submit(page, "Reject", confirmed=True)
    page.get_by_text("no decision is left").wait_for()
    row = stored.one("SELECT status, decision_comment FROM missions WHERE id = ?", (missions[1],))
    assert tuple(row) == ("rejected", "no burning")
    page.goto(f"/ui/missions/{missions[0]}")
    page.get_by_label("Reason").fill("changed my mind")
    submit(page, "Cancel mission", confirmed=True)
    page.get_by_text("no decision is left").wait_for()
    assert stored.value("SELECT status FROM missions WHERE id = ?", (missions[0],)) == "cancelled"

    # --- tasks: create two; cancel one, delete the other -----------------------------------------
    tasks = []
    for title in ("Tidy the notes", "Index the notes"):
        page.goto(f"/ui/tasks/new?agent_id={agent_id}")
        page.get_by_label("Title", exact=True).fill(title)
        page.get_by_label("Description").fill("Sort by date.")
        page.get_by_label("Priority").select_option("high")
        page.get_by_label("web search").check()
        if title == "Tidy the notes":
            page.get_by_label("Person's review").select_option("true")
        submit(page, "Create task")
        page.wait_for_url(re.compile(r"/ui/tasks/\d+$"))
        tasks.append(id_from_url(page))
    row = stored.one("SELECT * FROM tasks WHERE id = ?", (tasks[0],))
    assert (row["title"], row["description"], row["agent_id"], row["priority"]) == (
        "Tidy the notes",
        "Sort by date.",
        agent_id,
        "high",
    )
    assert json.loads(row["required_tools"]) == ["web_search"] and row["created_by"] == "user:bob"
    assert (row["review_agent_id"], row["review_human"], row["review_max_cycles"]) == (None, 1, 3)
    assert stored.value("SELECT review_human FROM tasks WHERE id = ?", (tasks[1],)) == 0
    page.goto(f"/ui/tasks/{tasks[0]}")
    submit(page, "Cancel task", confirmed=True)
    page.locator("main .badge", has_text="cancelled").first.wait_for()
    assert stored.value("SELECT status FROM tasks WHERE id = ?", (tasks[0],)) == "cancelled"
    page.goto(f"/ui/tasks/{tasks[1]}")
    submit(page, "Delete task", confirmed=True)
    page.wait_for_url(re.compile(r"/ui/tasks$"))
    assert stored.value("SELECT deleted_at FROM tasks WHERE id = ?", (tasks[1],)) is not None

    # --- settings as an admin: a token, a user, a change to the user ------------------------------
    log_in(page, "alice")
    page.goto("/ui/settings")
    page.get_by_label("Name", exact=True).fill("notes script")
    page.locator("#token-scope").select_option("operate")
    page.get_by_label("Expires after (days)").fill("30")
    submit(page, "Create token")
    page.locator("#new-token").wait_for()
    token = page.locator("#new-token").inner_text()
    row = stored.one("SELECT * FROM api_tokens WHERE name = 'notes script'")
    assert (row["scope"], row["created_by"], row["revoked_at"]) == ("operate", "user:alice", None)
    assert token.startswith("mc_") and token not in json.dumps(dict(row))

    page.goto("/ui/settings")
    page.get_by_label("User name").fill("carol")
    page.locator("#user-role").select_option("admin")
    page.get_by_label("Initial password").fill(PASSWORD)
    submit(page, "Create user")
    page.locator("td", has_text="carol").wait_for()
    assert stored.value("SELECT role FROM users WHERE username = 'carol'") == "admin"
    page.get_by_label("User name").fill("dave")
    page.get_by_label("Initial password").fill(PASSWORD)
    submit(page, "Create user")
    page.locator("td", has_text="dave").wait_for()
    dave = stored.one("SELECT id, role, disabled FROM users WHERE username = 'dave'")
    assert tuple(dave)[1:] == ("read", 0)
    form = page.locator(f"form[data-api='/api/users/{dave['id']}']")
    form.get_by_label("Role").select_option("operate")
    form.get_by_label("Disabled").check()
    form.get_by_role("button", name="Save").click()
    confirm(page)
    page.wait_for_load_state("load")
    expect(page.locator("tr", has_text="dave")).to_contain_text("disabled")
    assert tuple(stored.one("SELECT role, disabled FROM users WHERE id = ?", (dave["id"],))) == (
        "operate",
        1,
    )

    # --- escalations: three refusals of the script's token need a human -------------------------
    for title in ("", "x" * 300, "   "):
        answer = page.request.post(
            "/api/tasks",
            data={"title": title, "agent_id": agent_id},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status == 422
    escalations = [
        r["id"] for r in stored.rows("SELECT id FROM escalations WHERE status = 'open' ORDER BY id")
    ]
    assert len(escalations) == 3
    page.goto("/ui/escalations")
    item = page.locator(f"#escalation-{escalations[0]}")
    item.get_by_role("button", name="Acknowledge").click()
    page.locator(f"#escalation-{escalations[0]} .badge", has_text="acknowledged").wait_for()
    assert (
        stored.value("SELECT acknowledged_by FROM escalations WHERE id = ?", (escalations[0],))
        == "user:alice"
    )
    item = page.locator(f"#escalation-{escalations[0]}")
    item.get_by_label("How it was resolved").fill("a test script")
    item.get_by_role("button", name="Resolve").click()
    confirm(page)
    expect(page.locator(f"#escalation-{escalations[0]}")).to_have_count(0)
    row = stored.one("SELECT * FROM escalations WHERE id = ?", (escalations[0],))
    assert (row["status"], row["resolution_comment"]) == ("resolved", "a test script")

    # bulk: tick both, acknowledge, then resolve both with one comment
    page.get_by_label("Select all 2 shown").check()
    submit(page, "Acknowledge selected")
    page.locator(f"#escalation-{escalations[2]} .badge", has_text="acknowledged").wait_for()
    assert {
        r[0] for r in stored.rows("SELECT status FROM escalations WHERE id > ?", (escalations[0],))
    } == {"acknowledged"}
    page.get_by_label(f"Select escalation #{escalations[1]}").check()
    page.get_by_label(f"Select escalation #{escalations[2]}").check()
    page.locator("#bulk-comment").fill("the script was fixed")
    submit(page, "Resolve selected", confirmed=True)
    page.get_by_text("Nothing needs a human decision.").wait_for()
    resolved = stored.rows(
        "SELECT status, resolution_comment FROM escalations WHERE id > ?", (escalations[0],)
    )
    assert {tuple(r) for r in resolved} == {("resolved", "the script was fixed")}
    shot(page, "escalations-resolved")

    # --- the token is revoked ------------------------------------------------------------------
    page.goto("/ui/settings")
    page.locator("tr", has_text="notes script").get_by_role("button", name="Revoke").click()
    confirm(page)
    page.locator("tr", has_text="notes script").locator(".badge", has_text="revoked").wait_for()
    assert stored.value("SELECT revoked_at FROM api_tokens WHERE name = 'notes script'")

    # --- the agent is retired --------------------------------------------------------------------
    page.goto(f"/ui/agents/{agent_id}")
    submit(page, "Retire", confirmed=True)
    page.wait_for_url(re.compile(r"/ui/agents$"))
    assert stored.value("SELECT status FROM agents WHERE id = ?", (agent_id,)) == "retired"
    page.close()
    console.assert_clean()


def test_the_policy_form_saves_its_defaults_and_a_change(
    browser: Any, server: Server, console: Console, stored: Stored
) -> None:
    page = browser.new_page()
    log_in(page, "alice")
    refusals = stored.count("audit_log", "action = 'policy.notifications.update'")
    # unchanged defaults: the locked security category goes with them
    page.goto("/ui/notifications/policy")
    submit(page, "Save policy", confirmed=True)
    page.get_by_text("Version 1, changed by user:alice").wait_for()
    policy = json.loads(stored.value("SELECT value FROM policies WHERE name = 'notifications'"))
    assert "security" in policy["webhook_categories"]
    assert policy["muted_categories"] == [] and policy["quiet_hours"] is None
    # a change: mute tasks, quiet hours for runner messages, no webhook for rules
    page.locator("input[name='muted_categories'][value='task']").check()
    page.locator("input[name='quiet_categories'][value='runner']").check()
    page.locator("input[name='webhook_categories'][value='rule']").uncheck()
    page.get_by_label("From").fill("22:00")
    page.get_by_label("To", exact=True).fill("07:00")
    submit(page, "Save policy", confirmed=True)
    page.get_by_text("Version 2, changed by user:alice").wait_for()
    row = stored.one("SELECT value, version FROM policies WHERE name = 'notifications'")
    policy = json.loads(row["value"])
    assert row["version"] == 2
    assert policy["muted_categories"] == ["task"] and policy["quiet_categories"] == ["runner"]
    assert policy["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    assert "rule" not in policy["webhook_categories"] and "security" in policy["webhook_categories"]
    outcomes = [
        r[0]
        for r in stored.rows(
            "SELECT outcome FROM audit_log WHERE action = 'policy.notifications.update' ORDER BY id"
        )
    ][refusals:]
    assert outcomes == ["ok", "ok"]  # never refused as an attempt to silence security
    page.close()
    console.assert_clean()


def test_rules_and_notifications_forms(
    browser: Any, server: Server, console: Console, stored: Stored
) -> None:
    page = browser.new_page()
    log_in(page, "alice")
    # a notify rule from the builder
    page.goto("/ui/rules/new")
    page.get_by_label("Name").fill("tell me about failures")
    page.get_by_label("When this event happens").select_option("task.status_changed")
    page.get_by_role("button", name="Add a condition").click()
    page.locator("select[name$='.field']").select_option("payload.to")
    page.locator("select[name$='.op']").select_option("eq")
    page.locator("input[name^='when.'][name$='.value']").fill("failed")
    page.locator("#a-0-cat").select_option("task")
    page.locator("#a-0-ntitle").fill("Task {subject_id} failed")
    page.get_by_label("At most, per hour").fill("5")
    submit(page, "Create rule")
    page.wait_for_url(re.compile(r"/ui/rules/\d+$"))
    rule_id = id_from_url(page)
    rule = stored.one("SELECT * FROM rules WHERE id = ?", (rule_id,))
    assert (rule["name"], rule["event_type"], rule["enabled"], rule["max_firings_per_hour"]) == (
        "tell me about failures",
        "task.status_changed",
        0,
        5,
    )
    condition = {"field": "payload.to", "op": "eq", "value": "failed"}
    assert json.loads(rule["conditions"]) == [condition]
    action = json.loads(rule["actions"])[0]
    assert (action["type"], action["category"], action["title"]) == (
        "notify",
        "task",
        "Task {subject_id} failed",
    )

    # a dry run stores nothing
    firings = stored.count("rule_firings")
    page.get_by_label("Subject id").fill("3")
    page.get_by_label(re.compile("Event payload")).fill("to=failed")
    submit(page, "Try it")
    page.locator("#dry-run-result .notice").wait_for()
    assert stored.count("rule_firings") == firings

    submit(page, "Enable")
    page.get_by_role("button", name="Disable").wait_for()
    assert stored.value("SELECT enabled FROM rules WHERE id = ?", (rule_id,)) == 1
    submit(page, "Disable", confirmed=True)
    page.get_by_role("button", name="Enable").wait_for()
    assert stored.value("SELECT enabled FROM rules WHERE id = ?", (rule_id,)) == 0
    submit(page, "Delete", confirmed=True)
    page.wait_for_url(re.compile(r"/ui/rules$"))
    assert stored.value("SELECT deleted_at FROM rules WHERE id = ?", (rule_id,)) is not None

    # presets: the two rules an owner wants first, in two clicks each
    page.goto("/ui/rules/new")
    page.get_by_label("When this event happens").select_option("conversation.failed")
    assert page.locator("#a-0-cat").input_value() == "runner"  # follows the event
    page.get_by_label("When this event happens").select_option("mission.failed")
    assert page.locator("#a-0-cat").input_value() == "mission"
    assert (
        page.locator("#rule-on option[value='task.status_changed']")
        .inner_text()
        .startswith("A task changes status")
    )
    shot(page, "rule-builder-presets")
    for preset, expected in (
        ("Notify me when a task fails", {"type": "notify", "category": "task"}),
        ("Review every finished task", {"type": "open_escalation", "kind": "review_task"}),
    ):
        page.goto("/ui/rules/new")
        page.get_by_role("button", name=preset).click()
        submit(page, "Create rule")
        page.wait_for_url(re.compile(r"/ui/rules/\d+$"))
        row = stored.one("SELECT * FROM rules WHERE id = ?", (id_from_url(page),))
        assert row["event_type"] == "task.status_changed"
        value = "failed" if expected["type"] == "notify" else "succeeded"
        assert json.loads(row["conditions"]) == [
            {"field": "payload.to", "op": "eq", "value": value}
        ]
        action = json.loads(row["actions"])[0]
        assert {k: action[k] for k in expected} == expected
        assert page.get_by_text("new status is").count() == 1  # the rule page speaks English

    # a rule that would start a shell agent waits for another admin (carol) to approve it
    page.goto("/ui/agents")
    page.get_by_label("Name", exact=True).fill("shelly")
    page.get_by_label("Role").fill("operator")
    page.get_by_label("Shell access").check()
    submit(page, "Create agent")
    page.wait_for_url(re.compile(r"/ui/agents/\d+$"))
    page.goto("/ui/rules/new")
    page.get_by_label("Name").fill("clean up after a failure")
    page.get_by_label("When this event happens").select_option("task.status_changed")
    page.locator("#a-0-type").select_option("create_task")
    page.locator("#a-0-agent").select_option(label="shelly")
    page.locator("#a-0-ttitle").fill("Clean up after task {subject_id}")
    submit(page, "Create rule")
    page.wait_for_url(re.compile(r"/ui/rules/\d+$"))
    shell_rule = id_from_url(page)
    assert stored.value("SELECT approval FROM rules WHERE id = ?", (shell_rule,)) == "pending"
    log_in(page, "carol")
    page.goto(f"/ui/rules/{shell_rule}")
    submit(page, "Approve")
    page.locator("#rule-pending").wait_for(state="detached")
    row = stored.one("SELECT approval, approved_by FROM rules WHERE id = ?", (shell_rule,))
    assert tuple(row) == ("approved", "user:carol")

    # notifications: one read, then all
    unread = stored.count("notifications", "read_at IS NULL AND muted = 0")
    assert unread >= 2
    page.goto("/ui/notifications")
    page.get_by_role("button", name="Mark read").first.click()
    page.wait_for_load_state("load")
    expect(page.get_by_role("button", name="Mark read")).to_have_count(min(unread - 1, 50))
    assert stored.count("notifications", "read_at IS NULL AND muted = 0") == unread - 1
    submit(page, "Mark all read", confirmed=True)
    page.get_by_role("button", name="Mark read").first.wait_for(state="detached")
    assert stored.count("notifications", "read_at IS NULL AND muted = 0") == 0
    page.close()
    console.assert_clean()


def test_password_change_and_logout(
    browser: Any, server: Server, console: Console, stored: Stored
) -> None:
    page = browser.new_page()
    log_in(page, "carol")
    before = stored.value("SELECT password_hash FROM users WHERE username = 'carol'")
    page.goto("/ui/settings")
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password").fill(NEW_PASSWORD)
    submit(page, "Change password", confirmed=True)
    page.locator("#login-form").wait_for()  # back on the login page
    assert stored.value("SELECT password_hash FROM users WHERE username = 'carol'") != before
    carol = stored.value("SELECT id FROM users WHERE username = 'carol'")
    assert stored.count("sessions", "user_id = ?", (carol,)) == 0
    log_in(page, "carol", NEW_PASSWORD)
    assert stored.count("sessions", "user_id = ?", (carol,)) == 1
    page.locator("#logout").click()
    page.locator("#login-form").wait_for()  # ("/ui/" also ends with a slash)
    assert stored.count("sessions", "user_id = ?", (carol,)) == 0
    page.close()
    console.assert_clean()


def test_ten_refused_form_submissions_open_no_escalation(
    browser: Any, server: Server, console: Console, stored: Stored
) -> None:
    page = browser.new_page()
    log_in(page, "bob")
    agent_id = stored.value("SELECT id FROM agents WHERE name = 'shelly'")
    escalations = stored.count("escalations")
    notifications = stored.count("notifications")
    refusals = stored.count("audit_log", "outcome = 'refused'")
    mistakes = [
        {"Title": ""},
        {"Title": "x" * 300},
        {"Description": "my key is ghp_0b2C6UXQx4skJiPGgOBGwXGSYZ5XDnWTroPa"},
        {"Due (your local time)": "2020-01-01T10:00"},
        {"Depends on tasks": "99999"},
    ]
    with console.expect_refusal("/api/tasks", 422):
        for mistake in mistakes:
            page.goto(f"/ui/tasks/new?agent_id={agent_id}")
            page.get_by_label("Title", exact=True).fill("A fine title")
            for label, value in mistake.items():
                page.get_by_label(label, exact=True).fill(value)
            submit(page, "Create task")
            page.locator(".form-error:not([hidden])").wait_for()
    with console.expect_refusal("/api/missions", 422):
        for bound, value in (("Cost, USD", "500"), ("Tokens", "999999999"), ("Steps", "99")):
            page.goto("/ui/missions/new")
            page.get_by_label("Title", exact=True).fill("Too big")
            page.get_by_label("Goal").fill("Everything at once.")
            page.get_by_label("Step title").fill("All")
            page.get_by_label(bound, exact=True).fill(value)
            submit(page, "Propose mission")
            page.locator(".form-error:not([hidden])").wait_for()
        for goal in ("", "token ghp_0b2C6UXQx4skJiPGgOBGwXGSYZ5XDnWTroPa"):
            page.goto("/ui/missions/new")
            page.get_by_label("Title", exact=True).fill("Odd")
            page.get_by_label("Goal").fill(goal)
            page.get_by_label("Step title").fill("All")
            page.locator("#mission-form").evaluate("f => f.noValidate = true")
            submit(page, "Propose mission")
            page.locator(".form-error:not([hidden])").wait_for()
    shot(page, "mission-refused-in-place")
    assert stored.count("audit_log", "outcome = 'refused'") - refusals >= 9
    assert stored.count("escalations") - escalations == 0
    assert stored.count("notifications") - notifications == 0
    page.close()
    console.assert_clean()


def test_backups_page_makes_and_verifies_a_backup(
    browser: Any, server: Server, console: Console, stored: Stored
) -> None:
    page = browser.new_page()
    log_in(page, "alice")
    page.goto("/ui/health")
    repair = page.locator("#repairs [data-repair='backup']")
    expect(repair).to_contain_text("No backup yet")
    expect(repair).to_contain_text("Fix:")
    shot(page, "health-repairs")
    repair.get_by_role("link", name="Open the Backups page").click()
    page.wait_for_url(re.compile(r"/ui/backups$"))
    assert page.locator("#no-backup").is_visible()
    submit(page, "Back up now")
    page.locator("#backup-1").wait_for()
    archives = sorted((server.root / "state" / "backups").glob("mission-control-*.db.gz"))
    assert len(archives) == 1 and archives[0].name in page.locator("#backup-1").inner_text()
    page.locator("#backup-1").get_by_role("button", name="Verify").click()
    result = page.locator("#backup-1 [data-result]")
    expect(result).to_have_text("OK: checksum and integrity ok")
    assert [tuple(r) for r in stored.rows(
        "SELECT action, outcome FROM audit_log WHERE action LIKE 'backup.%' ORDER BY id"
    )] == [("backup.create", "ok"), ("backup.verify", "ok")]  # fmt: skip
    assert "backup restore" in page.locator("main pre").inner_text()
    shot(page, "backups")
    page.close()
    console.assert_clean()


def test_the_phone_menu_folds_behind_one_button(
    browser: Any, server: Server, console: Console
) -> None:
    page = browser.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, "alice")
    page.goto("/ui/")
    toggle = page.get_by_role("button", name=re.compile("^Menu"))
    nav = page.locator("#main-nav")
    assert toggle.is_visible() and not nav.is_visible()
    header = page.locator("header.top").bounding_box()
    assert header is not None and header["height"] <= 120, header  # was a third of the screen
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
    shot(page, "phone-menu-closed", full=False)
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    expect(nav.get_by_role("link", name="Escalations")).to_be_visible()
    shot(page, "phone-menu-open", full=False)
    nav.get_by_role("link", name="Tasks").click()  # two taps to any page
    page.wait_for_url(re.compile(r"/ui/tasks$"))
    assert not page.locator("#main-nav").is_visible()
    # the manifest and its icons load for "add to home screen"
    manifest = page.request.get("/static/manifest.webmanifest")
    assert manifest.ok and manifest.json()["start_url"] == "/ui/"
    for icon in manifest.json()["icons"]:
        assert page.request.get(icon["src"]).ok
    page.set_viewport_size({"width": 1280, "height": 900})
    page.reload()
    assert not page.get_by_role("button", name=re.compile("^Menu")).is_visible()
    assert page.locator("#main-nav").is_visible()
    page.close()
    console.assert_clean()
