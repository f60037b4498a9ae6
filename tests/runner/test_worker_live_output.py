"""Live run output: the agent's messages and tool calls reach the event log while
the run goes on, batched and gated (app/runner/live.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.worker import (
    Rows,
    make_settings,
    running_worker,
    script_profile,
    write_agent,
    write_profiles,
)

SECRET = "sk-ant-api03-" + "L" * 90

#: prints Claude Code stream-json: a burst of 300 messages, a pause, a tool call
STREAMER = f"""
import json, sys, time
def line(obj):
    sys.stdout.write(json.dumps(obj) + "\\n")
    sys.stdout.flush()
for i in range(300):
    line({{"type": "assistant", "message": {{"id": f"m{{i}}", "content": [
        {{"type": "text", "text": f"step {{i}} "}}]}}}})
line({{"type": "assistant", "message": {{"id": "k", "content": [
    {{"type": "text", "text": "the key is {SECRET}"}}]}}}})
time.sleep(1.5)
line({{"type": "assistant", "message": {{"id": "t", "content": [
    {{"type": "tool_use", "name": "Read", "input": {{"file_path": "notes.md"}}}}]}}}})
line({{"type": "user", "message": {{"content": [
    {{"type": "tool_result", "content": "first line of notes"}}]}}}})
time.sleep(1.5)
emit("done")
"""


async def test_output_arrives_while_the_run_goes_on_batched_and_gated(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    write_profiles(tmp_path, {"s": script_profile(write_agent(tmp_path, "s", STREAMER))})
    agent = rows.agent(profile="s")
    _, conversation = rows.task(agent)
    async with running_worker(settings, cancel_poll_s=0.5) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "SUCCEEDED", outcome
    events = rows.events("conversation.output")
    finished = rows.events("conversation.succeeded")[0]
    payloads = [json.loads(e["payload"]) for e in events]
    texts = [c["text"] for p in payloads for c in p["chunks"]]
    joined = "".join(texts)
    # everything arrived, in order, before the run was recorded as finished
    assert "step 0 \nstep 1 \n" in joined and "step 299 \n" in joined
    assert any(
        c["kind"] == "tool" and c["text"].startswith("Read ") for p in payloads for c in p["chunks"]
    )
    assert any(
        c["kind"] == "result" and "first line of notes" in c["text"]
        for p in payloads
        for c in p["chunks"]
    )
    assert all(e["id"] < finished["id"] for e in events)
    assert [p["seq"] for p in payloads] == list(range(1, len(payloads) + 1))
    # batched: 302 pieces over about 3 s in a handful of writes, not one per piece
    assert 2 <= len(events) <= 10, len(events)
    # gated
    assert SECRET not in joined and "[REDACTED" in joined
    assert all(e["subject_id"] == conversation for e in events)
