"""A shell task waiting for a person shows it, in real Chromium.

bob (operate) asks for a task on an agent whose profile always runs commands, so
it is held for an admin's approval (docs/security-model.md, "A shell needs a
person"; app/tasks/approval.py). Its status stays queued; the board, the queued
list and the task page say "waiting for ... approval" next to it (bob: an
admin's; alice, the admin: yours), and that badge takes alice to the approval
panel, where one click approves it and the badge goes.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.browser import Console, Server, visit
from tests.support.ui import id_from_url, log_in, shot

pytest.importorskip("playwright.sync_api")

#: no worker: an approved task stays queued, so the page is read as it was left
UI_WORKER = False

YOURS = "waiting for your approval"
AN_ADMINS = "waiting for an admin's approval"


def make_agent(page: Any, name: str) -> int:
    visit(page, "/ui/agents")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Role").fill("janitor")
    page.get_by_label("Command profile").select_option("leaky")
    page.get_by_label("Identity (system prompt)").fill("You tidy up.")
    page.get_by_role("button", name="Create agent").click()
    page.wait_for_url(re.compile(r"/ui/agents/\d+$"))
    return id_from_url(page)


def make_task(page: Any, agent_id: int, title: str) -> int:
    visit(page, f"/ui/tasks/new?agent_id={agent_id}")
    page.get_by_label("Title", exact=True).fill(title)
    page.get_by_label("Description").fill("Remove the logs older than a week.")
    page.get_by_role("button", name="Create task").click()
    page.wait_for_url(re.compile(r"/ui/tasks/\d+$"))
    return id_from_url(page)


def badge_of(page: Any, task_id: int) -> Any:
    return page.locator(f'a[data-waiting="approval"][href="/ui/tasks/{task_id}#h-approval"]')


def test_a_held_shell_task_shows_it_waits_and_links_to_its_approval(
    browser: Any, server: Server, console: Console
) -> None:
    page = browser.new_page()
    log_in(page, "alice")
    agent_id = make_agent(page, "janitor")
    own = make_task(page, agent_id, "Sweep the cache")  # an admin's session: runs at once
    assert page.locator('a[data-waiting="approval"]').count() == 0

    log_in(page, "bob")
    held = make_task(page, agent_id, "Prune the logs")
    badge = badge_of(page, held)
    assert badge.inner_text() == AN_ADMINS
    assert page.locator("main p").first.locator(".badge", has_text="queued").count() == 1

    log_in(page, "alice")
    visit(page, "/ui/tasks?status=queued")
    assert badge_of(page, held).inner_text() == YOURS
    assert badge_of(page, own).count() == 0
    visit(page, "/ui/tasks")
    card = page.locator(".card", has=page.get_by_role("link", name="Prune the logs"))
    card.get_by_role("link", name=YOURS).click()
    page.wait_for_url(re.compile(rf"/ui/tasks/{held}#h-approval$"))
    assert badge_of(page, held).inner_text() == YOURS
    approve = page.get_by_role("button", name="Approve", exact=True)
    assert approve.is_visible()
    shot(page, "task-waiting-for-approval")
    approve.click()
    page.locator("#task-approved").wait_for()
    assert badge_of(page, held).count() == 0
    visit(page, "/ui/tasks")
    assert page.locator('a[data-waiting="approval"]').count() == 0
    console.assert_clean()
