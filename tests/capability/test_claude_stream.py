"""Claude Code's stream-json read live (app/runner/claude_code.py: ClaudeStream)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from app.runner.claude_code import ClaudeStream
from app.runner.runtime import StreamUsage


def event(kind: str, **body: object) -> bytes:
    line = {"type": "stream_event", "event": {"type": kind, **body}, "session_id": "s"}
    return (json.dumps(line, separators=(",", ":")) + "\n").encode()


def start(message_id: str, tokens_in: int, cache_read: int = 0) -> bytes:
    usage = {"input_tokens": tokens_in, "output_tokens": 1, "cache_read_input_tokens": cache_read}
    return event("message_start", message={"id": message_id, "usage": usage})


def delta(tokens_out: int) -> bytes:
    return event("message_delta", usage={"output_tokens": tokens_out})


def assistant(message_id: str, *tools: str) -> bytes:
    content = [{"type": "tool_use", "name": t, "input": {}} for t in tools] or [
        {"type": "text", "text": "hi"}
    ]
    line = {"type": "assistant", "message": {"id": message_id, "content": content}}
    return (json.dumps(line) + "\n").encode()


def test_usage_is_summed_per_turn_as_it_arrives():
    seen: list[StreamUsage] = []
    stream = ClaudeStream(on_usage=seen.append)
    stream.feed(start("m1", 100, cache_read=10))
    assert stream.usage.input_tokens == 100 and stream.usage.cache_read_tokens == 10
    stream.feed(delta(40))
    stream.feed(start("m2", 120) + delta(7) + delta(30))
    assert stream.usage == StreamUsage(
        input_tokens=220, output_tokens=70, cache_write_tokens=0, cache_read_tokens=10, turns=2
    )
    assert seen[-1] == stream.usage
    assert len(seen) == 5  # start, delta, start, delta, delta (each a change)


def test_lines_split_anywhere_give_the_same_figures():
    data = start("m1", 100) + delta(40) + assistant("m1") + start("m2", 5) + delta(9)
    whole = ClaudeStream()
    whole.feed(data)
    for size in (1, 7, 64):
        pieces = ClaudeStream()
        for i in range(0, len(data), size):
            pieces.feed(data[i : i + size])
        assert pieces.usage == whole.usage


def test_token_events_are_read_but_not_kept():
    stream = ClaudeStream()
    kept = stream.feed(start("m1", 1) + event("content_block_delta", delta={"text": "x"}))
    kept += stream.feed(assistant("m1"))
    assert kept == assistant("m1")


def test_tools_asked_for_but_not_granted_are_denied():
    stream = ClaudeStream(granted=frozenset({"Read"}))
    stream.feed(assistant("m1", "Read", "Bash"))
    assert stream.requested == ["Read", "Bash"]
    assert stream.denied == ["Bash"]


def test_denials_the_cli_reports_are_kept():
    stream = ClaudeStream()
    stream.feed(b'{"type":"system","subtype":"permission_denied","tool_name":"Edit"}\n')
    result = {"type": "result", "session_id": "abc", "permission_denials": [{"tool_name": "Bash"}]}
    stream.feed(json.dumps(result).encode() + b"\n")
    assert stream.denied == ["Edit", "Bash"]
    assert stream.session_id == "abc"
    assert stream.result is not None


def test_the_last_line_without_a_newline_is_read_at_close():
    stream = ClaudeStream()
    stream.feed(b'{"type":"result","session_id":"x"}')
    assert stream.result is None
    assert stream.close() == b'{"type":"result","session_id":"x"}'
    assert stream.result is not None


@given(st.binary(max_size=2000))
def test_garbage_never_raises(data):
    stream = ClaudeStream(granted=frozenset())
    stream.feed(data)
    stream.close()
    assert stream.usage.total >= 0


def test_hostile_figures_are_bounded():
    stream = ClaudeStream()
    line = {
        "type": "stream_event",
        "event": {
            "type": "message_start",
            "message": {
                "id": "m",
                "usage": {
                    "input_tokens": 10**30,
                    "output_tokens": -5,
                    "cache_read_input_tokens": "9",
                },
            },
        },
    }
    stream.feed(json.dumps(line).encode() + b"\n")
    assert stream.usage.input_tokens == 10**10
    assert stream.usage.output_tokens == 0 and stream.usage.cache_read_tokens == 0
