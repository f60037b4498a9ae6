"""Codex's ``exec --json`` output and session file read live
(app/runner/codex.py: CodexStream), and its flags from the capability."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.capability.model import Capability, Tool
from app.profiles.profiles import Profile, ProfileError
from app.runner.codex import CodexStream, command_line, config_toml, refused_tool_names
from app.runner.runtime import StreamUsage

THREAD = "01a24f35-47bc-7943-85ef-8af17b5da5ee"
#: stdout of the real codex 0.169.0 (a shell command, then a reply), as recorded
RECORDED = [
    {"type": "thread.started", "thread_id": THREAD},
    {"type": "turn.started"},
    {
        "type": "item.started",
        "item": {
            "id": "item_0",
            "type": "command_execution",
            "command": "/bin/bash -lc 'pwd > proof.txt; echo ok'",
            "aggregated_output": "",
            "exit_code": None,
            "status": "in_progress",
        },
    },
    {
        "type": "item.completed",
        "item": {
            "id": "item_0",
            "type": "command_execution",
            "command": "/bin/bash -lc 'pwd > proof.txt; echo ok'",
            "aggregated_output": "ok\n",
            "exit_code": 0,
            "status": "completed",
        },
    },
    {"type": "item.completed", "item": {"id": "item_1", "type": "agent_message", "text": "done"}},
    {
        "type": "turn.completed",
        "usage": {
            "input_tokens": 200,
            "cached_input_tokens": 50,
            "cache_write_input_tokens": 0,
            "output_tokens": 100,
            "reasoning_output_tokens": 20,
        },
    },
]
FINAL = StreamUsage(
    input_tokens=150, output_tokens=100, cache_write_tokens=0, cache_read_tokens=50, turns=0
)


def lines(objects: list[dict[str, object]]) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


def capability(*tools: Tool) -> Capability:
    chosen = frozenset(tools)
    return Capability(
        chosen, shell=Tool.SHELL in chosen, write=Tool.WRITE_FILES in chosen, basis=""
    )


def test_the_recorded_output_gives_reply_usage_and_session() -> None:
    seen: list[StreamUsage] = []
    stream = CodexStream(on_usage=seen.append)
    stream.feed(lines(RECORDED))
    assert stream.session_id == THREAD
    assert stream.text == "done" and stream.completed and not stream.failed
    # OpenAI counts cached tokens inside input_tokens; reasoning is part of output
    assert stream.usage == FINAL and seen == [FINAL]
    assert stream.requested == ["exec_command"] and stream.denied == []


def test_a_command_refused_to_the_run_is_denied() -> None:
    stream = CodexStream(refused=refused_tool_names(capability(Tool.READ_FILES)))
    stream.feed(lines(RECORDED))
    assert stream.denied == ["exec_command"]
    granted = CodexStream(refused=refused_tool_names(capability(Tool.READ_FILES, Tool.SHELL)))
    granted.feed(lines(RECORDED))
    assert granted.denied == []


def test_turn_failed_keeps_its_error() -> None:
    stream = CodexStream()
    stream.feed(lines([{"type": "turn.failed", "error": {"message": "quota exceeded"}}]))
    assert stream.failed and stream.error == "quota exceeded"


def rollout(folder: Path, records: list[dict[str, object]]) -> Path:
    day = folder / ".codex" / "sessions" / "2026" / "12" / "07"
    day.mkdir(parents=True, exist_ok=True)
    path = day / f"rollout-2026-12-07T06-33-41-{THREAD}.jsonl"
    with path.open("a") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path


def usage_record(response: str, tokens_in: int, tokens_out: int) -> dict[str, object]:
    usage = {"input_tokens": tokens_in, "cached_input_tokens": 0, "output_tokens": tokens_out}
    return {"type": "token_usage_record", "payload": {"response_id": response, "usage": usage}}


def test_usage_is_read_from_the_session_file_while_the_run_goes_on(tmp_path: Path) -> None:
    seen: list[StreamUsage] = []
    refused = refused_tool_names(capability(Tool.READ_FILES))
    stream = CodexStream(refused=refused, on_usage=seen.append)
    stream.watch_home(tmp_path)
    rollout(tmp_path, [usage_record("r1", 1000, 10)])
    stream.feed(lines(RECORDED[:1]))
    assert stream.usage.input_tokens == 1000 and stream.usage.turns == 1
    rollout(
        tmp_path,
        [
            usage_record("r1", 1000, 10),  # repeated: counted once
            {"type": "response_item", "payload": {"type": "function_call", "name": "spawn_agent"}},
            usage_record("r2", 2000, 20),
        ],
    )
    stream.poll(force=True)
    assert stream.usage.input_tokens == 3000 and stream.usage.output_tokens == 30
    assert stream.denied == ["spawn_agent"]
    assert [u.input_tokens for u in seen] == [1000, 3000]


def test_a_planted_fifo_or_link_is_not_read(tmp_path: Path) -> None:
    day = tmp_path / ".codex" / "sessions" / "2026" / "12" / "07"
    day.mkdir(parents=True)
    os.mkfifo(day / f"rollout-x-{THREAD}.jsonl")
    stream = CodexStream()
    stream.watch_home(tmp_path)
    stream.feed(lines(RECORDED[:1]))  # would block forever if the FIFO were opened blocking
    stream.poll(force=True)
    assert stream.usage == StreamUsage()
    (day / f"rollout-x-{THREAD}.jsonl").unlink()
    secret = tmp_path / "elsewhere.jsonl"
    secret.write_text(json.dumps(usage_record("r", 5, 5)) + "\n")
    (day / f"rollout-x-{THREAD}.jsonl").symlink_to(secret)
    stream = CodexStream()
    stream.watch_home(tmp_path)
    stream.feed(lines(RECORDED[:1]))
    stream.poll(force=True)
    assert stream.usage == StreamUsage()


CHUNK = st.binary(min_size=0, max_size=200)


@settings(max_examples=150, deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=len(lines(RECORDED))),
    sizes=st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=40),
    noise=st.lists(CHUNK, max_size=5),
)
def test_truncated_split_and_interleaved_output_never_crashes(
    cut: int, sizes: list[int], noise: list[bytes]
) -> None:
    data = lines(RECORDED)[:cut]
    stream = CodexStream()
    position = 0
    for index, size in enumerate(sizes):
        stream.feed(data[position : position + size])
        position += size
        at_line_end = position >= len(data) or data[position - 1 : position] == b"\n"
        if index < len(noise) and at_line_end:
            # a garbage line between whole lines (interleaved output)
            stream.feed(noise[index].replace(b"\n", b" ") + b"\n")
    stream.feed(data[position:])
    stream.close()
    complete = data[: data.rfind(b"\n") + 1] if b"\n" in data else b""
    whole = CodexStream()
    whole.feed(complete)
    # usage so far is kept: at least what the complete lines reported
    assert stream.usage.total >= whole.usage.total
    assert stream.usage.total <= FINAL.total


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_arbitrary_bytes_never_crash(chunks: list[bytes]) -> None:
    stream = CodexStream()
    for chunk in chunks:
        stream.feed(chunk)
    stream.close()
    assert stream.usage.total >= 0


# --------------------------------------------------------------------------- flags


def test_flags_follow_the_capability() -> None:
    read_only = command_line(["codex"], capability(Tool.READ_FILES))
    assert read_only[:2] == ["codex", "exec"] and read_only[-1] == "-"
    assert read_only[read_only.index("--sandbox") + 1] == "read-only"
    assert "shell_tool" in read_only and "unified_exec" in read_only
    assert 'approval_policy="never"' in read_only
    assert 'web_search="disabled"' in read_only
    writer = command_line(["codex"], capability(Tool.READ_FILES, Tool.WRITE_FILES))
    assert writer[writer.index("--sandbox") + 1] == "danger-full-access"
    assert "shell_tool" in writer
    shell = command_line(["codex"], capability(Tool.READ_FILES, Tool.SHELL, Tool.WEB_SEARCH))
    assert shell[shell.index("--sandbox") + 1] == "danger-full-access"
    assert "shell_tool" not in shell and 'web_search="live"' in shell
    assert "multi_agent" in shell and "--dangerously-bypass-approvals-and-sandbox" not in shell


def test_the_provider_is_written_for_codex_home() -> None:
    text = config_toml(
        {"provider": "local", "base_url": "http://127.0.0.1:11434/v1", "env_key": "OLLAMA_KEY"},
        model="qwen2.5-coder",
    )
    assert 'model_provider = "local"' in text and 'wire_api = "responses"' in text
    assert 'base_url = "http://127.0.0.1:11434/v1"' in text and 'env_key = "OLLAMA_KEY"' in text
    assert config_toml({}, model="gpt-5.5").startswith('model = "gpt-5.5"')
    for bad in (
        {"provider": "x", "base_url": "http://u:p@host/v1"},
        {"provider": "x", "base_url": "file:///etc"},
        {"provider": "X Y", "base_url": "http://h/v1"},
        {"base_url": "http://h/v1"},
        {"provider": "x", "base_url": "http://h/v1", "sandbox_mode": "danger-full-access"},
    ):
        with pytest.raises(ProfileError):
            config_toml(bad, model="m")


@pytest.mark.parametrize(
    "argv",
    [
        ["codex", "--sandbox", "danger-full-access"],
        ["codex", "-c", "approval_policy=never"],
        ["codex", "--config=sandbox_mode=danger-full-access"],
        ["codex", "--enable", "shell_tool"],
        ["codex", "exec"],
        ["codex", "--dangerously-bypass-approvals-and-sandbox"],
    ],
)
def test_a_codex_profile_may_not_set_what_the_runtime_owns(argv: list[str]) -> None:
    with pytest.raises(ValueError):
        Profile(argv=argv, runtime="codex")


def test_a_call_codex_refused_is_denied(tmp_path: Path) -> None:
    stream = CodexStream()
    stream.watch_home(tmp_path)
    call = {"type": "custom_tool_call", "name": "apply_patch", "call_id": "c1", "input": "x"}
    output = {
        "type": "custom_tool_call_output",
        "call_id": "c1",
        "output": "patch rejected: writing is blocked by read-only sandbox;"
        " rejected by user approval settings",
    }
    rollout(
        tmp_path,
        [{"type": "response_item", "payload": call}, {"type": "response_item", "payload": output}],
    )
    stream.feed(lines(RECORDED[:1]))
    assert stream.requested == ["apply_patch"] and stream.denied == ["apply_patch"]
