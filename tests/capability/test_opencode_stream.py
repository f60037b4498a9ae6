"""opencode's ``run --format json`` output read live (app/runner/opencode.py:
OpencodeStream), and its permissions from the capability."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.capability.model import Capability, Tool
from app.profiles.environment import ChildEnv
from app.profiles.profiles import Profile, ProfileError
from app.runner.opencode import (
    FIXED_ENV,
    OpencodeRuntime,
    OpencodeStream,
    agent_name,
    command_line,
    config_json,
    refused_tool_names,
)
from app.runner.runtime import StreamUsage, runtime_env

SESSION = "ses_db0c36dbbffekhdWM4JFOWX3lW"


def step_finish(part_id: str, reason: str, tokens_in: int, tokens_out: int, **extra: int) -> dict:
    tokens = {
        "total": tokens_in + tokens_out,
        "input": tokens_in,
        "output": tokens_out,
        "reasoning": extra.get("reasoning", 0),
        "cache": {"write": extra.get("write", 0), "read": extra.get("read", 0)},
    }
    part = {"id": part_id, "reason": reason, "type": "step-finish", "tokens": tokens, "cost": 0}
    return {"type": "step_finish", "sessionID": SESSION, "part": part}


#: stdout of the real opencode 1.18.33 (a refused bash call, then a reply), as recorded
RECORDED = [
    {"type": "step_start", "sessionID": SESSION, "part": {"type": "step-start"}},
    {
        "type": "tool_use",
        "sessionID": SESSION,
        "part": {
            "type": "tool",
            "tool": "bash",
            "callID": "call_6ffea68e6e74406581a6a8ef",
            "state": {
                "status": "error",
                "input": {"command": "touch proof.txt", "description": "t"},
                "error": "Model tried to call unavailable tool 'invalid'. Available tools: read.",
            },
        },
    },
    step_finish("prt_1", "tool-calls", 100, 50),
    {"type": "step_start", "sessionID": SESSION, "part": {"type": "step-start"}},
    {"type": "text", "sessionID": SESSION, "part": {"type": "text", "text": "done"}},
    step_finish("prt_2", "stop", 100, 50, reasoning=7, read=30),
]
FINAL = StreamUsage(
    input_tokens=200, output_tokens=107, cache_write_tokens=0, cache_read_tokens=30, turns=2
)


def lines(objects: list[dict]) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


def capability(*tools: Tool) -> Capability:
    chosen = frozenset(tools)
    return Capability(
        chosen, shell=Tool.SHELL in chosen, write=Tool.WRITE_FILES in chosen, basis=""
    )


def test_the_recorded_output_gives_reply_usage_denial_and_session() -> None:
    seen: list[StreamUsage] = []
    stream = OpencodeStream(refused=refused_tool_names(capability(Tool.READ_FILES)))
    stream.on_usage = seen.append
    stream.feed(lines(RECORDED))
    assert stream.session_id == SESSION and stream.text == "done" and stream.reason == "stop"
    assert stream.usage == FINAL
    assert [u.turns for u in seen] == [1, 2]  # each model call as it finishes
    assert stream.denied == ["bash"]


def test_an_unavailable_tool_is_denied_even_when_not_mapped() -> None:
    stream = OpencodeStream()
    stream.feed(lines(RECORDED[:2]))
    assert stream.denied == ["bash"]


def test_a_repeated_step_counts_once() -> None:
    stream = OpencodeStream()
    stream.feed(lines([step_finish("p", "stop", 10, 1), step_finish("p", "stop", 10, 1)]))
    assert stream.usage.input_tokens == 10


@settings(max_examples=150, deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=len(lines(RECORDED))),
    sizes=st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=40),
    noise=st.lists(st.binary(max_size=200), max_size=5),
)
def test_truncated_split_and_interleaved_output_never_crashes(
    cut: int, sizes: list[int], noise: list[bytes]
) -> None:
    data = lines(RECORDED)[:cut]
    stream = OpencodeStream()
    position = 0
    for index, size in enumerate(sizes):
        stream.feed(data[position : position + size])
        position += size
        at_line_end = position >= len(data) or data[position - 1 : position] == b"\n"
        if index < len(noise) and at_line_end:
            stream.feed(noise[index].replace(b"\n", b" ") + b"\n")
    stream.feed(data[position:])
    stream.close()
    complete = data[: data.rfind(b"\n") + 1] if b"\n" in data else b""
    whole = OpencodeStream()
    whole.feed(complete)
    assert stream.usage.total >= whole.usage.total
    assert stream.usage.total <= FINAL.total


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_arbitrary_bytes_never_crash(chunks: list[bytes]) -> None:
    stream = OpencodeStream()
    for chunk in chunks:
        stream.feed(chunk)
    stream.close()
    assert stream.usage.total >= 0


# --------------------------------------------------------------------------- permissions


def test_the_command_line_picks_the_agent_of_the_capability() -> None:
    argv = command_line(["opencode"], capability(Tool.READ_FILES, Tool.SHELL))
    assert argv == ["opencode", "run", "--format", "json", "--agent", "mc-rx"]
    assert agent_name(capability()) == "mc-"
    assert "--auto" not in argv


def test_every_permission_is_denied_but_the_granted_tools() -> None:
    config = config_json(
        {"provider": "local", "base_url": "http://127.0.0.1:11434/v1"}, model="qwen"
    )
    assert config["permission"] == {"*": "deny"}
    assert config["model"] == "local/qwen" and config["mcp"] == {} and config["plugin"] == []
    assert config["provider"]["local"]["options"]["apiKey"] == "{env:OPENAI_API_KEY}"
    assert len(config["agent"]) == 32
    read_only = config["agent"]["mc-r"]["permission"]
    assert read_only["*"] == "deny" and read_only["read"] == "allow"
    assert "bash" not in read_only and "edit" not in read_only
    everything = config["agent"]["mc-rwsfx"]["permission"]
    assert {everything[k] for k in ("bash", "edit", "webfetch", "websearch")} == {"allow"}
    assert everything["external_directory"] == "deny"
    assert all("ask" not in agent["permission"].values() for agent in config["agent"].values())


def test_bad_options_are_refused() -> None:
    for bad in (
        {"provider": "x", "base_url": "http://u:p@host/v1"},
        {"provider": "x"},
        {"provider": "x", "base_url": "http://h/v1", "permission": "allow"},
    ):
        with pytest.raises(ProfileError):
            config_json(bad, model="m")


def test_the_run_never_reads_a_workspace_config(tmp_path: Path) -> None:
    env = runtime_env(
        OpencodeRuntime(), ChildEnv({"OPENAI_API_KEY": "k"}, frozenset({"OPENAI_API_KEY"}))
    )
    assert env["OPENCODE_DISABLE_PROJECT_CONFIG"] == "1"
    assert env.secret_values == frozenset({"k"})
    assert set(FIXED_ENV) <= set(env)


@pytest.mark.parametrize(
    "argv",
    [
        ["opencode", "--auto"],
        ["opencode", "--agent", "build"],
        ["opencode", "-m", "openai/gpt-5"],
        ["opencode", "--attach", "http://127.0.0.1:4096"],
        ["opencode", "run"],
    ],
)
def test_an_opencode_profile_may_not_set_what_the_runtime_owns(argv: list[str]) -> None:
    with pytest.raises(ValueError):
        Profile(argv=argv, runtime="opencode")


def test_the_run_home_fetches_no_code(tmp_path: Path) -> None:
    OpencodeRuntime().prepare_home(
        tmp_path, {"provider": "p", "base_url": "http://127.0.0.1:1/v1"}, model="m"
    )
    npmrc = (tmp_path / ".npmrc").read_text()
    assert "registry=http://127.0.0.1:9/" in npmrc and "offline=true" in npmrc
    config = json.loads((tmp_path / ".config" / "opencode" / "opencode.json").read_text())
    assert config["permission"] == {"*": "deny"}
