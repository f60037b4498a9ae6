"""A finished run stores its runtime, its model and its cached input tokens (the
run page shows them: app/ui/templates/run.html)."""

from __future__ import annotations

from pathlib import Path

from tests.support.worker import (
    Rows,
    make_settings,
    running_worker,
    script_profile,
    write_agent,
    write_profiles,
)

CACHED = """
import json, sys
sys.stdout.write(json.dumps({
    "type": "result", "subtype": "success", "is_error": False, "result": "ok",
    "session_id": "s", "num_turns": 1, "total_cost_usd": 0.002,
    "usage": {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 90,
              "cache_creation_input_tokens": 5},
}) + "\\n")
"""


async def test_the_run_keeps_runtime_model_and_cached_tokens(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    spec = script_profile(write_agent(tmp_path, "cached", CACHED))
    spec.update(runtime="claude-code", commands="never", price_fallback="demo")
    write_profiles(tmp_path, {"c": spec})
    agent = rows.agent(profile="c", model="claude-sonnet-4-5")
    _, conversation = rows.task(agent)
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "SUCCEEDED", outcome
    assert conversation is not None
    row = rows.conversation(conversation)
    assert (row["runtime"], row["model"]) == ("claude-code", "claude-sonnet-4-5")
    assert row["cached_tokens"] == 90
    assert row["input_tokens"] == 10 + 90 + 5 and row["output_tokens"] == 4
