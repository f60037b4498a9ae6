"""Gemini CLI's stream-json and session files read live (app/runner/gemini.py:
GeminiStream), its end states, and the settings that carry the capability.

``recorded/`` holds the real output of Gemini CLI 0.61.0 (stdout and the session
file it wrote) for a read-only run against the scripted server
(tests/support/gemini_server.py): a read_file call, a run_shell_command call the
CLI refused (not declared), a final answer. Per turn: prompt 1000/1100/1200
uncached + 100/900/1000 cached, output 20/30/40, thoughts 7/0/3.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.capability.model import Capability, Tool
from app.profiles.profiles import Profile
from app.runner import gemini
from app.runner.gemini import GeminiStream
from app.runner.process import RunResult
from app.runner.runtime import StreamUsage

RECORDED = Path(__file__).with_name("recorded")
STDOUT = (RECORDED / "gemini-0.61.0-stream.jsonl").read_bytes()
SESSION = (RECORDED / "gemini-0.61.0-session.jsonl").read_bytes()
GRANTED = frozenset(gemini.TOOL_NAMES[Tool.READ_FILES])
#: the whole recorded run: uncached input, output (with thoughts), cached
FULL = StreamUsage(input_tokens=3300, output_tokens=100, cache_read_tokens=2000, turns=3)


def capability(*tools: Tool) -> Capability:
    return Capability(
        tools=frozenset(tools), shell=Tool.SHELL in tools, write=Tool.WRITE_FILES in tools, basis=""
    )


def session_file(home: Path) -> Path:
    chats = home / ".gemini" / "tmp" / "workspace" / "chats"
    chats.mkdir(parents=True, exist_ok=True)
    return chats / "session-2026-12-07T06-42-98ec149d.jsonl"


def run(*, exit_code: int = 0, ok: bool = True, reason: str = "") -> RunResult:
    return RunResult(
        started=True,
        exit_code=exit_code,
        signal=None,
        stdout=STDOUT,
        stderr=b"",
        truncated=False,
        stderr_truncated=False,
        timed_out=False,
        cancelled=False,
        duration_s=1.0,
        reason=reason or ("ok" if ok else f"exited with code {exit_code}"),
        group_clean=True,
        leftovers_killed=0,
        limit_method="setrlimit",
    )


# --------------------------------------------------------------------------- recorded


def test_the_recorded_run_is_read_whole(tmp_path: Path) -> None:
    session_file(tmp_path).write_bytes(SESSION)
    stream = GeminiStream(granted=GRANTED, home=tmp_path)
    assert stream.feed(STDOUT) == STDOUT  # everything is kept as the run's output
    stream.close()
    assert stream.usage == FULL
    assert stream.session_id == "98ec149d-0d97-485d-86a8-3a1d36fa09a5"
    assert stream.requested == ["read_file", "run_shell_command"]
    assert stream.denied == ["run_shell_command"]
    assert stream.text == "all done"
    reply = gemini.reply(run(), stream)
    assert not reply.is_error and reply.text == "all done" and reply.subtype == "success"
    assert (reply.input_tokens, reply.output_tokens, reply.cache_read_input_tokens) == (
        3300,
        100,
        2000,
    )


def test_without_the_session_files_the_result_alone_gives_the_usage() -> None:
    stream = GeminiStream(granted=GRANTED)
    stream.feed(STDOUT)
    assert stream.usage == StreamUsage(
        input_tokens=3300, output_tokens=100, cache_read_tokens=2000, turns=0
    )


def test_each_finished_turn_reaches_the_budget_check_as_it_is_written(tmp_path: Path) -> None:
    """The session file grows turn by turn; each stdout event polls it."""
    seen: list[StreamUsage] = []
    path = session_file(tmp_path)
    path.write_bytes(b"")
    stream = GeminiStream(granted=GRANTED, home=tmp_path, on_usage=seen.append)
    records = [line + b"\n" for line in SESSION.splitlines() if b'"type":"gemini"' in line]
    with path.open("ab") as out:
        out.write(records[0])  # the first turn, written before its tool_result
        out.flush()
        stream.feed(b'{"type":"tool_result","tool_id":"t","status":"success"}\n')
        assert stream.usage == StreamUsage(
            input_tokens=1000, output_tokens=27, cache_read_tokens=100, turns=1
        )
        out.write(records[1] + records[2])  # the same turn again, with its tool calls
        out.flush()
        stream.feed(b'{"type":"tool_result","tool_id":"u","status":"success"}\n')
        assert stream.usage == StreamUsage(
            input_tokens=2100, output_tokens=57, cache_read_tokens=1000, turns=2
        )
    assert seen == [
        StreamUsage(input_tokens=1000, output_tokens=27, cache_read_tokens=100, turns=1),
        stream.usage,
    ]


def test_the_result_never_counts_twice_what_the_turns_showed(tmp_path: Path) -> None:
    session_file(tmp_path).write_bytes(SESSION)
    stream = GeminiStream(home=tmp_path)
    stream.poll()
    assert stream.usage == FULL
    stream.feed(STDOUT)  # the CLI's totals: the same tokens
    assert stream.usage == FULL


def test_the_usage_property_polls_between_stdout_lines(tmp_path: Path) -> None:
    """A long tool call prints nothing: the guard's periodic look still sees the turn."""
    path = session_file(tmp_path)
    stream = GeminiStream(home=tmp_path)
    stream.feed(STDOUT.splitlines(keepends=True)[0])
    path.write_bytes(SESSION)
    stream._polled_at = 0.0  # the poll interval has passed
    assert stream.usage == FULL


def test_session_files_are_not_followed_through_symlinks(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_bytes(SESSION)
    home = tmp_path / "home"
    session_file(home).symlink_to(elsewhere)
    stream = GeminiStream(home=home)
    stream.poll()
    assert stream.usage == StreamUsage()


# --------------------------------------------------------------------------- end states


def result_line(status: str, **extra: object) -> bytes:
    stats = {"total_tokens": 150, "input_tokens": 100, "output_tokens": 50, "cached": 0}
    return (
        json.dumps({"type": "result", "status": status, "stats": stats, **extra}) + "\n"
    ).encode()


def test_the_turn_limit_is_its_own_end_state() -> None:
    stream = GeminiStream()
    error = {"type": "FatalTurnLimitedError", "message": "Reached max session turns"}
    stream.feed(result_line("error", error=error))
    reply = gemini.reply(run(exit_code=53, ok=False), stream)
    assert reply.is_error and reply.subtype == "error_max_turns"
    assert "turn limit" in (reply.error_reason or "")
    assert (reply.input_tokens, reply.output_tokens) == (100, 50)  # what it used is kept


def test_an_error_the_cli_reports_is_an_error() -> None:
    stream = GeminiStream()
    stream.feed(result_line("error", error={"type": "ApiError", "message": "quota"}))
    reply = gemini.reply(run(exit_code=1, ok=False), stream)
    assert (
        reply.is_error
        and reply.subtype == "error"
        and "ApiError: quota" in (reply.error_reason or "")
    )


def test_no_result_is_an_error_that_keeps_the_usage_seen(tmp_path: Path) -> None:
    session_file(tmp_path).write_bytes(SESSION)
    stream = GeminiStream(home=tmp_path)
    stream.feed(STDOUT.splitlines(keepends=True)[0])
    reply = gemini.reply(run(exit_code=None, ok=False, reason="timeout"), stream)  # type: ignore[arg-type]
    assert reply.is_error and "no result event" in (reply.error_reason or "")
    assert reply.input_tokens == 3300 and reply.cache_read_input_tokens == 2000


def test_success_with_a_failed_process_is_not_a_success() -> None:
    stream = GeminiStream()
    stream.feed(result_line("success"))
    assert gemini.reply(run(exit_code=1, ok=False), stream).is_error


# --------------------------------------------------------------------------- fuzzing


@given(st.binary(max_size=2000))
def test_garbage_never_raises(data: bytes) -> None:
    stream = GeminiStream(granted=GRANTED)
    stream.feed(data)
    stream.close()
    gemini.reply(run(), stream)


@settings(max_examples=200, deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=len(STDOUT)),
    sizes=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=40),
)
def test_truncated_output_in_any_pieces_never_raises_and_keeps_what_it_saw(
    cut: int, sizes: list[int]
) -> None:
    data = STDOUT[:cut]
    stream = GeminiStream(granted=GRANTED)
    position = 0
    for size in sizes:
        stream.feed(data[position : position + size])
        position += size
    stream.feed(data[position:])
    stream.close()
    whole = GeminiStream(granted=GRANTED)
    whole.feed(data)
    whole.close()
    assert stream.usage == whole.usage
    assert stream.denied == whole.denied
    if data.endswith(b"}\n") and b'"type":"result"' in data:
        assert stream.usage.input_tokens == 3300


@settings(max_examples=100, deadline=None)
@given(noise=st.lists(st.binary(max_size=200), min_size=1, max_size=20), seed=st.randoms())
def test_interleaved_garbage_lines_keep_the_usage(noise: list[bytes], seed: object) -> None:
    """Garbage lines between the real ones (a CLI warning, a torn write): the real
    events are still read, the usage and the denials are those of the real run."""
    lines = STDOUT.splitlines(keepends=True)
    mixed: list[bytes] = []
    for index, line in enumerate(lines):
        mixed.append(noise[index % len(noise)].replace(b"\n", b" ") + b"\n")
        mixed.append(line)
    stream = GeminiStream(granted=GRANTED)
    stream.feed(b"".join(mixed))
    stream.close()
    assert stream.usage.input_tokens == 3300 and stream.usage.output_tokens == 100
    assert stream.denied == ["run_shell_command"]


@settings(max_examples=100, deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=len(SESSION)),
    junk=st.binary(max_size=300),
)
def test_a_torn_or_hostile_session_file_keeps_the_turns_read(
    tmp_path_factory: pytest.TempPathFactory, cut: int, junk: bytes
) -> None:
    home = tmp_path_factory.mktemp("home")
    path = session_file(home)
    path.write_bytes(SESSION[:cut] + junk)
    stream = GeminiStream(home=home)
    stream.poll()
    usage = stream.usage
    assert usage.input_tokens <= 3300 + 10**10  # bounded, no crash
    complete = SESSION[:cut].count(b'"type":"gemini"')
    if complete >= 4 and b"\n" in SESSION[:cut].split(b'"type":"gemini"')[-1]:
        assert usage.input_tokens >= 2100  # the first two turns, at least
    shutil.rmtree(home)


def test_hostile_figures_are_bounded(tmp_path: Path) -> None:
    line = {"type": "gemini", "id": "x", "tokens": {"input": 1e300, "output": -5, "cached": "9"}}
    session_file(tmp_path).write_text(json.dumps(line) + "\n")
    stream = GeminiStream(home=tmp_path)
    stream.poll()
    assert stream.usage.input_tokens == 10**10 and stream.usage.output_tokens == 0


# --------------------------------------------------------------------------- capability


def test_read_only_settings_and_policy() -> None:
    cap = capability(Tool.READ_FILES)
    config = gemini.settings(cap, max_turns=7)
    assert config["tools"]["core"] == list(gemini.TOOL_NAMES[Tool.READ_FILES])
    assert config["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert config["model"]["maxSessionTurns"] == 7 and config["mcpServers"] == {}
    assert config["advanced"]["ignoreLocalEnv"] is True
    text = gemini.policy(cap)
    assert '"read_file"' in text and "run_shell_command" not in text
    assert 'toolName = "*"\ndecision = "deny"' in text


def test_a_shell_run_is_granted_the_shell_tool_and_nothing_else() -> None:
    cap = capability(Tool.READ_FILES, Tool.SHELL)
    core = gemini.settings(cap, max_turns=7)["tools"]["core"]
    assert "run_shell_command" in core and "write_file" not in core and "web_fetch" not in core


def test_nothing_granted_denies_everything() -> None:
    cap = capability()
    assert gemini.settings(cap, max_turns=1)["tools"]["core"] == []
    assert "allow" not in gemini.policy(cap)


def test_the_command_line_never_prompts() -> None:
    argv = gemini.command_line(["gemini", "-m", "gemini-2.5-pro"])
    assert argv[:3] == ["gemini", "-m", "gemini-2.5-pro"]
    assert argv[argv.index("--output-format") + 1] == "stream-json"
    assert argv[argv.index("--approval-mode") + 1] == "yolo"
    assert "--skip-trust" in argv and argv[argv.index("-p") + 1] == ""


def test_prepare_home_writes_the_capability_of_the_run_it_was_planned_for(
    tmp_path: Path,
) -> None:
    runtime = gemini.GeminiRuntime()
    cap = capability(Tool.READ_FILES, Tool.WRITE_FILES)
    runtime.command_line(["gemini"], cap, max_turns=9, max_budget_usd=1.0)
    reader = runtime.reader(cap)
    runtime.prepare_home(tmp_path, {}, model="gemini-2.5-pro")
    config = json.loads((tmp_path / ".gemini" / "settings.json").read_text())
    assert "write_file" in config["tools"]["core"] and config["model"]["maxSessionTurns"] == 9
    assert (tmp_path / ".gemini" / "policies" / gemini.POLICY_FILE).exists()
    assert isinstance(reader, GeminiStream) and reader.home == tmp_path


def test_prepare_home_without_a_planned_run_refuses(tmp_path: Path) -> None:
    from app.profiles.profiles import ProfileError

    runtime = gemini.GeminiRuntime()
    with pytest.raises(ProfileError):
        runtime.prepare_home(tmp_path, {}, model="gemini-2.5-pro")


@pytest.mark.parametrize(
    "flag", ["--approval-mode", "--yolo", "-y", "--allowed-tools", "--policy", "--output-format"]
)
def test_a_gemini_profile_may_not_set_the_flags_the_runtime_owns(flag: str) -> None:
    with pytest.raises(ValueError, match=r"runtime|permission"):
        Profile.model_validate({"runtime": "gemini", "argv": ["gemini", flag, "x"]})


def tool_use(name: str, tool_id: str) -> bytes:
    line = {"type": "tool_use", "tool_name": name, "tool_id": tool_id, "parameters": {}}
    return (json.dumps(line) + "\n").encode()


def tool_result(tool_id: str, status: str, error_type: str | None = None) -> bytes:
    line: dict[str, object] = {"type": "tool_result", "tool_id": tool_id, "status": status}
    if error_type is not None:
        line["error"] = {"type": error_type, "message": "no"}
    return (json.dumps(line) + "\n").encode()


def test_a_tool_asked_for_but_not_granted_is_denied_even_if_it_ran() -> None:
    stream = GeminiStream(granted=GRANTED)
    stream.feed(tool_use("web_fetch", "t1") + tool_result("t1", "success"))
    assert stream.denied == ["web_fetch"]


def test_a_refusal_the_cli_reports_is_denied_by_the_tool_name() -> None:
    stream = GeminiStream(granted=None)  # nothing inferred from the grant
    stream.feed(tool_use("write_file", "t1") + tool_result("t1", "error", "tool_not_registered"))
    stream.feed(tool_use("read_file", "t2") + tool_result("t2", "error", "file_not_found"))
    assert stream.denied == ["write_file"]
