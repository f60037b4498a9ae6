"""The agent form offers the host's loaded profiles with their runtime and the price
table's models; the run page shows the run's runtime, model, tokens in / out /
cached and cost (app/ui/templates/agents.html, run.html)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.ui.render import usd
from tests.support.browser import Server
from tests.support.ui import Stored, log_in, shot

expect = pytest.importorskip("playwright.sync_api").expect


def test_the_agent_form_offers_the_loaded_runtimes_and_priced_models(
    browser: Any, server: Server
) -> None:
    page = browser.new_page()
    log_in(page, "alice")
    page.goto("/ui/agents")
    profile = page.get_by_label("Command profile")
    # the profiles this host loaded (tests/support/browser.py), each with its runtime
    labels = profile.locator("option").all_inner_texts()
    assert labels == ["demo · claude-code", "leaky · generic"], labels
    models = page.locator("#agent-models option")
    values = [models.nth(i).get_attribute("value") for i in range(models.count())]
    assert {"claude-sonnet-4", "gpt-5", "gemini-2.5-flash", "ollama/"} <= set(values), values
    assert "local" not in values  # a price fallback, not a model
    label = page.locator('#agent-models option[value="claude-sonnet-4"]').get_attribute("label")
    assert label is not None and "$3 in / $15 out per million tokens" in label
    assert page.get_by_label("Model").get_attribute("list") == "agent-models"
    shot(page, "agent-form-runtimes")
    page.close()


def test_the_run_page_shows_runtime_model_tokens_and_cost(browser: Any, server: Server) -> None:
    stored = Stored(server.root / "mc.db")
    page = browser.new_page()
    log_in(page, "alice")
    agent = page.evaluate(
        """() => MC.api('POST', '/api/agents', {name: 'counter', role: 'counts',
            model: 'demo-1', profile: 'demo'})"""
    )
    task = page.evaluate(
        """(agent) => MC.api('POST', '/api/tasks', {title: 'Count', agent_id: agent,
            description: 'DEMO:turns=2'})""",
        agent["id"],
    )
    deadline = time.monotonic() + 30
    done: list[Any] = []
    while time.monotonic() < deadline and not done:
        done = stored.rows(
            "SELECT id, runtime, model, input_tokens, output_tokens, cached_tokens, cost_usd"
            " FROM conversations WHERE task_id = ? AND status = 'SUCCEEDED'",
            (task["id"],),
        )
        time.sleep(0.2)
    assert done, "the run did not finish"
    run = done[0]
    assert (run["runtime"], run["model"]) == ("claude-code", "demo-1")
    assert run["input_tokens"] > 0 and run["output_tokens"] > 0
    page.goto(f"/ui/runs/{run['id']}")
    expect(page.locator("#run-runtime")).to_have_text("claude-code")
    expect(page.locator("#run-model")).to_have_text("demo-1")
    figures = f"{run['input_tokens']:,} / {run['output_tokens']:,} / {run['cached_tokens']:,}"
    expect(page.locator("#run-tokens")).to_have_text(figures)
    expect(page.locator("dl.figures")).to_contain_text(usd(run["cost_usd"]))
    shot(page, "run-runtime-usage", full=False)
    page.close()
