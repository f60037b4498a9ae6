"""A person's review verdict from the task page, in real Chromium (the review gate:
app/tasks/review.py, app/ui/templates/_review.html).

The worker runs the built-in demo agent for both the work and its reviewer. The
demo's reply holds no verdict line, so the reviewer's answer is unparseable: it
is not an approval, and the task waits for a person, on the dashboard's "Waiting
for you". The person sends it back with reasons, then approves the next round.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.browser import Console, Server, visit
from tests.support.ui import Stored, log_in, shot

expect = pytest.importorskip("playwright.sync_api").expect


def wait_until(stored: Stored, sql: str, params: tuple[Any, ...], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if stored.value(sql, params):
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def waiting_for_person(stored: Stored, task: int, rounds: int) -> None:
    wait_until(
        stored,
        "SELECT count(*) FROM task_reviews WHERE task_id = ? AND state = 'with_human'"
        " AND cycle = ?",
        (task, rounds),
        f"round {rounds} to wait for a person",
    )


def test_a_person_sends_work_back_then_approves_it_from_the_task_page(
    browser: Any, server: Server, console: Console
) -> None:
    stored = Stored(server.root / "mc.db")
    page = browser.new_page()
    log_in(page, "alice")
    make = """(name) => MC.api('POST', '/api/agents', {name: name, role: 'works',
        model: 'demo-1', profile: 'demo'})"""
    builder = page.evaluate(make, "builder")
    checker = page.evaluate(make, "checker")
    task = page.evaluate(
        """([agent, reviewer]) => MC.api('POST', '/api/tasks', {title: 'Write the notes',
            agent_id: agent, review: {agent_id: reviewer, max_cycles: 1}})""",
        [builder["id"], checker["id"]],
    )["id"]
    waiting_for_person(stored, task, 1)
    assert stored.value("SELECT status FROM tasks WHERE id = ?", (task,)) == "in_progress"

    # the dashboard says so and leads to the task's review
    page.goto("/ui/")
    item = page.locator("#waiting-for-you").get_by_role("link", name="A review waits for you")
    expect(item).to_be_visible()
    item.click()
    page.wait_for_url(f"**/ui/tasks/{task}#task-review")
    review = page.locator("#task-review")
    expect(review.locator(".verdict").first).to_contain_text("unparseable by agent checker")
    expect(review).to_contain_text("waiting for you")
    shot(page, "task-review-waiting")

    # sending it back needs reasons: said next to the field
    page.get_by_label("Request changes").check()
    with console.expect_refusal(f"/api/tasks/{task}/review", 422):
        page.get_by_role("button", name="Send verdict").click()
        error = page.locator('[data-error-for="reasons"]:not([hidden])')
        error.wait_for()
    page.get_by_label("Reasons").fill("Add a summary line at the top.")
    page.get_by_role("button", name="Send verdict").click()

    # the work runs again (told why) and, the agent's rounds used up, comes to the person
    waiting_for_person(stored, task, 2)
    assert stored.value("SELECT count(*) FROM conversations WHERE task_id = ?", (task,)) == 2
    visit(page, f"/ui/tasks/{task}")  # the verdict form reloads the page itself
    expect(page.locator("#task-review")).to_contain_text("request changes by user:alice")
    page.get_by_label("Approve").check()
    page.get_by_role("button", name="Send verdict").click()
    wait_until(
        stored,
        "SELECT status = 'succeeded' FROM tasks WHERE id = ?",
        (task,),
        "the task to succeed",
    )
    verdicts = stored.rows(
        "SELECT cycle, reviewer_kind, reviewer, verdict, reasons FROM review_verdicts"
        " WHERE task_id = ? ORDER BY id",
        (task,),
    )
    assert [tuple(v)[:4] for v in verdicts] == [
        (1, "agent", "agent checker", "unparseable"),
        (1, "human", "user:alice", "request_changes"),
        (2, "human", "user:alice", "approve"),
    ]
    assert verdicts[1]["reasons"] == "Add a summary line at the top."
    assert (
        stored.value(
            "SELECT count(*) FROM escalations WHERE kind = 'review_waiting'"
            " AND status != 'resolved'"
        )
        == 0
    )
    visit(page, f"/ui/tasks/{task}")  # the verdict form reloads the page itself
    expect(page.locator("#task-review")).to_contain_text("approve by user:alice")
    expect(page.locator("#review-form")).to_have_count(0)
    # the review run's page shows the verdict it gave
    review_run = stored.value(
        "SELECT conversation_id FROM review_verdicts WHERE task_id = ? AND reviewer_kind = 'agent'",
        (task,),
    )
    page.goto(f"/ui/runs/{review_run}")
    expect(page.locator(".verdicts")).to_contain_text("unparseable by agent checker")
    page.get_by_role("link", name="Review: Write the notes").click()
    expect(page.locator("#reviews-task")).to_contain_text(f"the review of task {task}")
    console.assert_clean()
    page.close()
