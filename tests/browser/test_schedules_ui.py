"""The Schedules pages in real Chromium: the create form (a mistake answered next
to its field, then what was stored), the next five due times, pause, resume,
run now and the history (docs/schedules.md). These are the steps ``FORMS`` of
``tests/browser/test_forms.py`` names for the schedule forms.

No worker runs in this module: the task "run now" makes stays queued.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.browser import Console, Server
from tests.support.ui import Stored, confirm, id_from_url, log_in

pytest.importorskip("playwright.sync_api")

UI_WORKER = False


def test_schedule_create_pause_resume_run_now_and_history(
    browser: Any, server: Server, console: Console
) -> None:
    stored = Stored(server.root / "mc.db")
    page = browser.new_page()
    log_in(page, "alice")

    # an agent to give the scheduled work to
    page.goto("/ui/agents")
    page.get_by_label("Name", exact=True).fill("reporter")
    page.get_by_label("Role").fill("summaries")
    page.get_by_label("Identity (system prompt)").fill("Summarise.")
    page.get_by_label("web search").check()
    page.get_by_role("button", name="Create agent").click()
    page.wait_for_url(re.compile(r"/ui/agents/\d+$"))
    agent_id = id_from_url(page)

    # --- create: a bad cron expression is said next to its field ---------------------------
    page.goto("/ui/schedules")
    page.get_by_role("link", name="Schedules").first.wait_for()
    page.get_by_label("Name", exact=True).fill("weekday issues")
    page.get_by_label("Cron expression").fill("0 25 * * *")
    page.get_by_label("Time zone").fill("Europe/Paris")
    page.get_by_label("Maximum runs (optional)").fill("30")
    page.get_by_label("After downtime").select_option("skip")
    page.get_by_label("Task title").fill("Summarise the new issues")
    page.get_by_label("Task description").fill("Only the ones opened since yesterday.")
    page.get_by_label("Agent").select_option(str(agent_id))
    page.get_by_label("Priority").select_option("high")
    page.get_by_label("web search").check()
    with console.expect_refusal("/api/schedules", 422):
        page.get_by_role("button", name="Create schedule").click()
        error = page.locator('[data-error-for="cron"]:not([hidden])')
        error.wait_for()
    assert "not valid" in error.inner_text() and "0 7 * * MON-FRI" in error.inner_text()
    assert page.get_by_label("Cron expression").get_attribute("aria-invalid") == "true"
    assert stored.count("schedules") == 0

    page.get_by_label("Cron expression").fill("0 7 * * MON-FRI")
    page.get_by_role("button", name="Create schedule").click()
    page.wait_for_url(re.compile(r"/ui/schedules/\d+$"))
    schedule_id = id_from_url(page)
    row = stored.one("SELECT * FROM schedules WHERE id = ?", (schedule_id,))
    assert (row["name"], row["cron"], row["timezone"]) == (
        "weekday issues",
        "0 7 * * MON-FRI",
        "Europe/Paris",
    )
    assert (row["max_runs"], row["missed_policy"], row["status"]) == (30, "skip", "active")
    assert (row["title"], row["description"], row["agent_id"], row["priority"]) == (
        "Summarise the new issues",
        "Only the ones opened since yesterday.",
        agent_id,
        "high",
    )
    assert row["required_tools"] == '["web_search"]' and row["created_by"] == "user:alice"

    # the next five due times, in the schedule's own zone
    due = page.locator("#h-next + ol.due-times li")
    assert due.count() == 5
    assert all(re.match(r"(Mon|Tue|Wed|Thu|Fri) \S+ 07:00 CES?T", t) for t in due.all_inner_texts())

    # --- pause, resume -----------------------------------------------------------------------
    page.get_by_role("button", name="Pause").click()
    confirm(page)
    page.get_by_role("button", name="Resume").wait_for()
    assert stored.value("SELECT status FROM schedules WHERE id = ?", (schedule_id,)) == "paused"
    page.get_by_role("button", name="Resume").click()
    page.get_by_role("button", name="Pause").wait_for()
    assert stored.value("SELECT status FROM schedules WHERE id = ?", (schedule_id,)) == "active"

    # --- run now: a task through pre-flight, shown in the history ----------------------------
    page.get_by_role("button", name="Run now").click()
    confirm(page)
    page.locator("#h-history + .table-wrap tbody tr").first.wait_for()
    firing = stored.one("SELECT * FROM schedule_firings WHERE schedule_id = ?", (schedule_id,))
    assert (firing["kind"], firing["outcome"], firing["actor"]) == (
        "run_now",
        "created",
        "user:alice",
    )
    task = stored.one(
        "SELECT title, agent_id, priority FROM tasks WHERE id = ?", (firing["task_id"],)
    )
    assert tuple(task) == ("Summarise the new issues", agent_id, "high")
    assert page.get_by_role("link", name=f"task {firing['task_id']}").is_visible()

    # --- the list shows it with its next five due times --------------------------------------
    page.goto("/ui/schedules")
    listed = page.locator(f"#schedule-{schedule_id}")
    assert listed.get_by_role("link", name="weekday issues").is_visible()
    assert listed.locator("ol.due-times li").count() == 5
    console.assert_clean()
