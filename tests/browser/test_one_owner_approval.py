"""One-owner approval, step-up and the second factor in real Chromium.

The server has one admin (alice) and one operator (bob), so the one-owner mode
applies: alice approves her own mission after typing her password again, the
approval is held for the cooling-off period (shortened here to a few seconds),
announced as a security notification, can be vetoed, and afterwards the worker
starts the mission without a further click. Then alice enrols a second factor
(QR code and key shown once, confirmed with a code), logs in with it and with a
recovery code (each once), and a second admin brings back the two-person rule.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import Console, Server, record_figures
from tests.support.totp import code as totp_code
from tests.support.ui import PASSWORD, Stored, confirm, id_from_url, log_in, shot

pytest.importorskip("playwright.sync_api")

COOLING_OFF_S = 12


def UI_ENV(root: Path) -> dict[str, str]:
    """This module's server: a short cooling-off, and the worker runs missions' steps."""
    return {
        "MC_APPROVAL_COOLING_OFF_SECONDS": str(COOLING_OFF_S),
        "MC_MISSIONS_RUN_STEPS": "true",
    }


@pytest.fixture(scope="module")
def stored(server: Server) -> Stored:
    return Stored(server.root / "mc.db")


class Clicks:
    """Counts the clicks a person makes (typing is not a click)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.count = 0

    def click(self, locator: Any) -> None:
        locator.click()
        self.count += 1


def wait_until(check: Any, timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def make_agent(page: Any, name: str) -> int:
    page.goto("/ui/agents")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Role").fill("researcher")
    page.get_by_label("Command profile").select_option("leaky")
    page.get_by_label("Identity (system prompt)").fill("You are careful.")
    page.get_by_role("button", name="Create agent").click()
    page.wait_for_url(re.compile(r"/ui/agents/\d+$"))
    return id_from_url(page)


def propose(page: Any, clicks: Clicks, title: str, agent_id: int) -> int:
    page.goto("/ui/missions")
    clicks.click(page.get_by_role("link", name="Propose a mission"))
    page.get_by_label("Title", exact=True).fill(title)
    page.get_by_label("Goal").fill("Collect and summarise the sources.")
    page.get_by_label("Step title").fill("Collect sources")
    page.get_by_label("Agent").select_option(str(agent_id))
    clicks.click(page.get_by_role("button", name="Propose mission"))
    page.wait_for_url(re.compile(r"/ui/missions/\d+$"))
    return id_from_url(page)


def status(stored: Stored, mission_id: int) -> str:
    return str(stored.value("SELECT status FROM missions WHERE id = ?", (mission_id,)))


def test_a_single_owner_goes_from_proposal_to_running_in_three_clicks(
    browser: Any, server: Server, console: Console, stored: Stored
) -> None:
    page = browser.new_page()
    log_in(page, "alice")
    agent_id = make_agent(page, "scout")

    clicks = Clicks(page)
    mission_id = propose(page, clicks, "Survey the field", agent_id)
    mode = page.locator("#approval-mode")
    assert mode.get_attribute("data-mode") == "one_owner"
    assert "only one admin" in mode.inner_text()
    # a wrong password is refused next to its field, nothing is held
    page.get_by_label("Your password").fill("not my password at all")
    with console.expect_refusal(f"/api/missions/{mission_id}/approve", 422):
        page.get_by_role("button", name=re.compile(r"^Approve \(held")).click()
        error = page.locator('[data-error-for="password"]:not([hidden])')
        error.wait_for()
    assert stored.count("held_approvals") == 0
    assert stored.count("audit_log", "action = 'auth.step_up_failed'") == 1

    page.get_by_label("Your password").fill(PASSWORD)
    clicks.click(page.get_by_role("button", name=f"Approve (held {COOLING_OFF_S} seconds)"))
    held = page.locator("#approval-held")
    held.wait_for()
    assert "Approved by user:alice and held" in held.inner_text()
    assert page.locator("#veto").is_visible()
    shot(page, "one-owner-held")
    # announced at once, as a security notification (every channel)
    assert (
        stored.count(
            "notifications",
            "category = 'security' AND title = ?",
            ("Self-approval held: mission Survey the field",),
        )
        == 1
    )
    assert status(stored, mission_id) == "proposed"

    # no more clicks: the countdown ends, the hold takes effect, the worker starts step 1
    wait_until(
        lambda: status(stored, mission_id) in ("running", "succeeded"),
        COOLING_OFF_S + 30,
        "the mission to run",
    )
    assert (
        stored.value("SELECT decided_by FROM missions WHERE id = ?", (mission_id,)) == "user:alice"
    )
    page.locator("#approval-held").wait_for(state="detached", timeout=(COOLING_OFF_S + 10) * 1000)
    shot(page, "one-owner-running")
    assert clicks.count == 3
    record_figures(one_owner_clicks_propose_to_running=clicks.count)
    console.assert_clean()


def test_any_admin_vetoes_a_held_self_approval(
    browser: Any, server: Server, console: Console, stored: Stored
) -> None:
    page = browser.new_page()
    log_in(page, "alice")
    agent_id = int(stored.value("SELECT id FROM agents WHERE name = 'scout'"))
    mission_id = propose(page, Clicks(page), "Audit the logs", agent_id)
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name=re.compile(r"^Approve \(held")).click()
    page.locator("#approval-held").wait_for()
    page.get_by_role("button", name="Veto").click()
    confirm(page)
    page.locator("#approval-vetoed").wait_for()
    assert (
        stored.value(
            "SELECT state FROM held_approvals WHERE target_id = ? AND kind = 'mission'",
            (mission_id,),
        )
        == "vetoed"
    )
    time.sleep(COOLING_OFF_S + 6)  # past the period and a worker pass: still not approved
    assert status(stored, mission_id) == "proposed"
    assert (
        stored.count(
            "notifications", "title = ?", ("Self-approval vetoed: mission Audit the logs",)
        )
        == 1
    )
    console.assert_clean()


def test_an_approval_is_two_taps_from_the_notifications_list_on_a_phone(
    browser: Any, server: Server, console: Console, stored: Stored
) -> None:
    page = browser.new_page()
    log_in(page, "bob")
    agent_id = int(stored.value("SELECT id FROM agents WHERE name = 'scout'"))
    mission_id = propose(page, Clicks(page), "Sweep the yard", agent_id)
    phone = browser.new_page()
    phone.set_viewport_size({"width": 390, "height": 844})
    log_in(phone, "alice")
    phone.goto("/ui/notifications")
    taps = Clicks(phone)
    taps.click(phone.get_by_role("link", name="Mission waiting for approval: Sweep the yard"))
    phone.wait_for_url(re.compile(rf"/ui/missions/{mission_id}#h-decide$"))
    approve = phone.get_by_role("button", name="Approve", exact=True)
    assert approve.is_visible()
    shot(phone, "phone-approval-from-notification", full=False)
    taps.click(approve)
    wait_until(lambda: status(stored, mission_id) != "proposed", 10, "the approval")
    assert stored.value("SELECT decided_by FROM missions WHERE id = ?", (mission_id,)) == (
        "user:alice"
    )
    assert taps.count == 2
    record_figures(phone_taps_notification_to_approved=taps.count)
    console.assert_clean()


def test_the_second_factor_enrols_logs_in_once_per_code_and_guards_step_up(
    browser: Any, server: Server, console: Console, stored: Stored
) -> None:
    page = browser.new_page()
    log_in(page, "alice")
    page.get_by_role("link", name="alice").click()
    page.wait_for_url(re.compile(r"/ui/account$"))
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Set up the second factor").click()
    secret_box = page.locator("#totp-secret")
    secret_box.wait_for()
    assert page.locator("#totp-qr svg").count() == 1
    secret = secret_box.inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    shot(page, "totp-enrol")
    # never stored in the clear
    sealed = str(stored.value("SELECT secret_sealed FROM totp_credentials"))
    assert secret not in sealed and sealed.startswith("v1:")
    with console.expect_refusal("/api/auth/totp/confirm", 422):
        page.get_by_label("the 6-digit code").fill(
            "000000" if totp_code(secret) != "000000" else "111111"
        )
        page.get_by_role("button", name="Turn it on").click()
        page.locator("#totp-confirm .form-error:not([hidden])").wait_for()
    page.get_by_label("the 6-digit code").fill(totp_code(secret))
    page.get_by_role("button", name="Turn it on").click()
    codes = page.locator("#totp-recovery-codes code")
    codes.first.wait_for()
    recovery = [c.strip() for c in codes.all_inner_texts()]
    assert len(recovery) == 10 and len(set(recovery)) == 10
    assert stored.count("totp_recovery_codes", "code_hash LIKE '$argon2id$%'") == 10
    page.goto("/ui/account")
    assert page.locator("#totp-on").is_visible()
    assert page.locator("#totp-secret").count() == 0  # the key is never shown again

    # login asks for the code; the next step's code works once, its replay is refused
    page.context.clear_cookies()
    page.goto("/")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    with console.expect_refusal("/api/auth/login", 401):
        page.get_by_role("button", name="Log in").click()
        page.locator("#code-field:not([hidden])").wait_for()
    next_code = totp_code(secret, 1)
    page.get_by_label("Code from your authenticator app").fill(next_code)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/ui/"))
    page.context.clear_cookies()
    page.goto("/")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    with console.expect_refusal("/api/auth/login", 401):
        page.get_by_role("button", name="Log in").click()
        page.locator("#code-field:not([hidden])").wait_for()
        page.get_by_label("Code from your authenticator app").fill(next_code)
        page.get_by_role("button", name="Log in").click()
        page.get_by_text("That code is wrong or was already used").wait_for()
    # a recovery code logs in once
    page.get_by_label("Code from your authenticator app").fill(recovery[0])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/ui/"))
    assert stored.count("totp_recovery_codes", "used_at IS NOT NULL") == 1

    # approving her own mission now asks for a code too
    agent_id = int(stored.value("SELECT id FROM agents WHERE name = 'scout'"))
    propose(page, Clicks(page), "Water the plants", agent_id)
    assert page.get_by_label("Code from your authenticator app").is_visible()

    # turning it off needs the password and a code (a recovery code is used up)
    page.goto("/ui/account")
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_label("Code from the app (or a recovery code)").fill(recovery[1])
    page.get_by_role("button", name="Turn the second factor off").click()
    confirm(page)
    page.locator("#totp-off").wait_for()
    assert stored.count("totp_credentials") == 0
    console.assert_clean()


def test_a_second_admin_brings_back_the_two_person_rule(
    browser: Any, server: Server, console: Console, stored: Stored
) -> None:
    page = browser.new_page()
    log_in(page, "alice")
    made = page.request.post(
        "/api/users",
        data={"username": "carol", "password": PASSWORD, "role": "admin"},
        headers={"X-CSRF-Token": page.locator('meta[name="csrf-token"]').get_attribute("content")},
    )
    assert made.status == 201, made.text()
    agent_id = int(stored.value("SELECT id FROM agents WHERE name = 'scout'"))
    mission_id = propose(page, Clicks(page), "Mend the fence", agent_id)
    mode = page.locator("#approval-mode")
    assert mode.get_attribute("data-mode") == "two_person"
    assert "2 admins" in mode.inner_text()
    assert "another person must approve" in page.locator("#self-approval").inner_text()
    assert page.locator("#approve-form").count() == 0
    log_in(page, "carol")
    page.goto(f"/ui/missions/{mission_id}")
    page.get_by_role("button", name="Approve", exact=True).click()
    wait_until(lambda: status(stored, mission_id) != "proposed", 10, "the approval")
    assert (
        stored.value("SELECT decided_by FROM missions WHERE id = ?", (mission_id,)) == "user:carol"
    )
    console.assert_clean()
