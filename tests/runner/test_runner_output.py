"""claude-json parsing: typed replies, and never an exception, whatever the agent prints."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.runner.output import AgentReply, parse_claude_json, reply_from_run
from app.runner.process import RunResult, truncation_marker


def result_object(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 2310,
        "duration_api_ms": 2200,
        "num_turns": 2,
        "result": "Here is the summary.",
        "session_id": "0c8a8e0f-9a1b-4a4e-8d1c-6f0b5a9b1f22",
        "total_cost_usd": 0.0123,
        "usage": {
            "input_tokens": 120,
            "cache_creation_input_tokens": 30,
            "cache_read_input_tokens": 400,
            "output_tokens": 56,
            "server_tool_use": {"web_search_requests": 0},
            "service_tier": "standard",
        },
    }
    obj.update(overrides)
    return obj


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def run_result(stdout: bytes, **overrides: Any) -> RunResult:
    values: dict[str, Any] = {
        "started": True,
        "exit_code": 0,
        "signal": None,
        "stdout": stdout,
        "stderr": b"",
        "truncated": False,
        "stderr_truncated": False,
        "timed_out": False,
        "cancelled": False,
        "duration_s": 0.1,
        "reason": "exited with code 0",
        "group_clean": True,
        "leftovers_killed": 0,
        "limit_method": "prlimit",
    }
    values.update(overrides)
    return RunResult(**values)


def test_success_object_is_parsed():
    reply = parse_claude_json(dumps(result_object()))
    assert reply == AgentReply(
        text="Here is the summary.",
        input_tokens=120,
        output_tokens=56,
        cost_usd=0.0123,
        is_error=False,
        raw_truncated=False,
        cache_creation_input_tokens=30,
        cache_read_input_tokens=400,
        num_turns=2,
        session_id="0c8a8e0f-9a1b-4a4e-8d1c-6f0b5a9b1f22",
        subtype="success",
        error_reason=None,
    )
    assert reply.total_input_tokens == 550
    assert reply.total_tokens == 606


def test_verbose_array_form_takes_the_result_message():
    messages = [
        {"type": "system", "subtype": "init"},
        {"type": "assistant", "message": {"content": []}},
        result_object(result="final"),
    ]
    assert parse_claude_json(dumps(messages)).text == "final"


def test_warnings_before_the_json_line_are_skipped():
    output = b"Warning: something noisy\n\n" + dumps(result_object(result="ok")) + b"\n"
    reply = parse_claude_json(output)
    assert reply.text == "ok" and not reply.is_error


def test_agent_reported_error_keeps_usage():
    obj = result_object(subtype="error_max_turns", is_error=True)
    del obj["result"]
    reply = parse_claude_json(dumps(obj))
    assert reply.is_error
    assert reply.error_reason == "the agent reported an error (error_max_turns)"
    assert reply.input_tokens == 120 and reply.cost_usd == 0.0123


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (b"", "printed nothing"),
        (b"   \n\t", "printed nothing"),
        (b"Segmentation fault", "not a claude-json result"),
        (b"\xff\xfe\x00\x00garbage", "not a claude-json result"),
        (b'{"type": "result", "result": "half', "not a claude-json result"),
        (b"[1, 2, 3]", "not a claude-json result"),
        (b'"just a string"', "not a claude-json result"),
        (b"null", "not a claude-json result"),
        (b"[" * 100_000 + b"]" * 100_000, "not a claude-json result"),
        (b'{"type": "assistant", "result": "x"}', "not 'result'"),
        (b'{"type": "result", "subtype": "success", "is_error": false}', "no reply text"),
    ],
)
def test_garbage_becomes_an_error_reply(output, reason):
    reply = parse_claude_json(output)
    assert reply.is_error
    assert reply.error_reason is not None and reason in reply.error_reason
    assert reply.text.startswith("[agent error]")
    assert reply.input_tokens == 0 and reply.cost_usd == 0.0


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": -5, "output_tokens": 1},
        {"input_tokens": "12", "output_tokens": 1},
        {"input_tokens": True, "output_tokens": 1},
        {"input_tokens": 10**15, "output_tokens": 1},
        {"input_tokens": 1.5, "output_tokens": 1},
        "lots",
    ],
)
def test_invalid_usage_is_an_error(usage):
    reply = parse_claude_json(dumps(result_object(usage=usage)))
    assert reply.is_error and "invalid usage" in (reply.error_reason or "")


@pytest.mark.parametrize("cost", ["NaN", "Infinity", "-Infinity", "-1", '"0.5"', "1e300"])
def test_invalid_cost_is_an_error(cost):
    text = json.dumps(result_object(total_cost_usd=0)).replace(
        '"total_cost_usd": 0', f'"total_cost_usd": {cost}'
    )
    reply = parse_claude_json(text.encode())
    assert reply.is_error


def test_huge_integer_does_not_escape():
    text = '{"type": "result", "result": "x", "usage": {"input_tokens": ' + "9" * 5000 + "}}"
    reply = parse_claude_json(text.encode())
    assert reply.is_error


def test_truncated_output_is_flagged():
    cut = dumps(result_object())[:40] + truncation_marker(5_000_000)
    reply = parse_claude_json(cut, truncated=True)
    assert reply.is_error and reply.raw_truncated
    assert "truncated" in (reply.error_reason or "")


def test_str_input_is_accepted():
    assert parse_claude_json(json.dumps(result_object())).text == "Here is the summary."


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_never_raises_on_random_bytes(data):
    reply = parse_claude_json(data)
    assert isinstance(reply, AgentReply)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["type", "subtype", "is_error", "result", "usage", "total_cost_usd", "num_turns"]
        ),
        json_values,
    )
)
def test_never_raises_on_random_result_objects(obj):
    reply = parse_claude_json(json.dumps(obj).encode())
    assert isinstance(reply, AgentReply)
    assert reply.input_tokens >= 0 and reply.output_tokens >= 0 and reply.cost_usd >= 0


# ---------------------------------------------------------------- reply_from_run


def test_successful_run_gives_the_parsed_reply():
    reply = reply_from_run(run_result(dumps(result_object())))
    assert not reply.is_error and reply.text == "Here is the summary."


def test_run_that_did_not_start_is_an_error():
    reply = reply_from_run(
        run_result(b"", started=False, exit_code=None, reason="could not start: 'x' not found")
    )
    assert reply.is_error and "could not start" in (reply.error_reason or "")


def test_nonzero_exit_with_a_success_object_is_still_an_error_but_keeps_usage():
    reply = reply_from_run(
        run_result(dumps(result_object()), exit_code=2, reason="exited with code 2")
    )
    assert reply.is_error
    assert reply.error_reason == "the run did not complete: exited with code 2"
    assert reply.input_tokens == 120 and reply.cost_usd == 0.0123


def test_timed_out_run_is_an_error():
    reply = reply_from_run(
        run_result(
            b"",
            exit_code=None,
            signal=15,
            timed_out=True,
            reason="stopped: wall-clock limit of 900 s reached",
        )
    )
    assert reply.is_error
    assert "wall-clock limit" in (reply.error_reason or "")
    assert "printed nothing" in (reply.error_reason or "")


def test_truncated_run_is_an_error_and_flagged():
    stdout = b"A" * 1000 + truncation_marker(1000)
    reply = reply_from_run(
        run_result(
            stdout, exit_code=None, signal=15, truncated=True, reason="stopped: stdout exceeded"
        )
    )
    assert reply.is_error and reply.raw_truncated
