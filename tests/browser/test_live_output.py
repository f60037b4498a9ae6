"""A run's output reaches another browser while the agent is still working
(live run output: app/runner/live.py, app/ui/static/live.js)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.browser.support import Server
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
            description: 'DEMO:turns=8\\nDEMO:turn_sleep=0.8'})""",
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
    expect(second.locator("#transcript")).to_be_visible(timeout=15_000)
    first.close()
    second.close()
