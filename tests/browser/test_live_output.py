"""A run's output reaches another browser while the agent is still working
(live run output: app/runner/live.py, app/ui/static/live.js)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.support.browser import Server
from tests.support.ui import Stored, log_in, shot

expect = pytest.importorskip("playwright.sync_api").expect


def test_live_output_reaches_a_second_browser_during_the_run(browser: Any, server: Server) -> None:
    stored = Stored(server.root / "mc.db")
    first = browser.new_page()
    log_in(first, "alice")
    agent = first.evaluate(
        """() => MC.api('POST', '/api/agents', {name: 'narrator', role: 'tells',
            model: 'demo-1', profile: 'demo'})"""
    )
    task = first.evaluate(
        """(agent) => MC.api('POST', '/api/tasks', {title: 'Tell it slowly', agent_id: agent,
            description: 'DEMO:turns=14\\nDEMO:turn_sleep=0.8'})""",
        agent["id"],
    )
    deadline = time.monotonic() + 20
    run: list[Any] = []
    while time.monotonic() < deadline:
        run = stored.rows(
            "SELECT id, status FROM conversations WHERE task_id = ? AND status = 'IN_PROGRESS'",
            (task["id"],),
        )
        if run:
            break
        time.sleep(0.1)
    assert run, "the worker did not start the run"
    conversation = int(run[0]["id"])
    second = browser.new_page()  # another tab: its own page, its own live stream
    second.goto(f"/ui/runs/{conversation}")
    output = second.locator("#live-output")
    expect(output).to_contain_text("Demo agent (demo-1)", timeout=8_000)
    still = stored.rows("SELECT status FROM conversations WHERE id = ?", (conversation,))
    assert still[0]["status"] == "IN_PROGRESS"  # shown while the agent is still working
    shot(second, "run-live-output", full=False)
    # when the run ends the page shows the stored transcript instead
    expect(second.locator("#transcript")).to_be_visible(timeout=30_000)

    # a reply continues the session: a follow-up task, run by the same agent
    second.get_by_label("Your reply to the agent").fill("Now say it in one line.")
    second.get_by_role("button", name="Send reply").click()
    second.wait_for_url(re.compile(r"/ui/tasks/\d+$"))
    follow = int(second.url.rsplit("/", 1)[1])
    stored_task = stored.rows(
        "SELECT follows_conversation_id, description, agent_id FROM tasks WHERE id = ?", (follow,)
    )
    assert tuple(stored_task[0]) == (conversation, "Now say it in one line.", agent["id"])
    deadline = time.monotonic() + 20
    done: list[Any] = []
    while time.monotonic() < deadline and not done:
        done = stored.rows(
            "SELECT transcript, session_id FROM conversations WHERE task_id = ?"
            " AND status = 'SUCCEEDED'",
            (follow,),
        )
        time.sleep(0.2)
    assert done, "the follow-up did not run"
    first_session = stored.rows(
        "SELECT session_id FROM conversations WHERE id = ?", (conversation,)
    )[0]["session_id"]
    assert done[0]["session_id"] == first_session
    assert f"(continuing session {first_session} after 1 turn(s))" in done[0]["transcript"]
    first.close()
    second.close()
