"""The real Claude Code CLI through the real worker and sandbox, against a scripted
Messages API on loopback (tests/support/model_server.py).

The CLI is the pinned npm package (scripts/install-test-deps.sh installs it); the
model is a script: each test says which tool calls the "model" makes, and checks
what the CLI was offered, what ran, what the worker recorded. Nothing leaves
loopback (CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1, ANTHROPIC_BASE_URL).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from app.runner.sandbox import landlock_status
from tests.support.agent_cli import pinned, version_of
from tests.support.model_server import ModelServer, Turn, text, tool
from tests.support.worker import Rows, make_settings, running_worker, write_profiles

CLAUDE_CODE_VERSION = pinned("CLAUDE_CODE_VERSION")
MODEL = "claude-sonnet-4-5"


VERSION = version_of(shutil.which("claude"))
pytestmark = [
    pytest.mark.skipif(
        VERSION != CLAUDE_CODE_VERSION,
        reason=f"Claude Code {CLAUDE_CODE_VERSION} is not installed (found {VERSION});"
        " scripts/install-test-deps.sh installs it",
    ),
    pytest.mark.skipif(landlock_status().abi < 1, reason="no Landlock in this kernel"),
    pytest.mark.slow,
]


def claude_profile(tmp_path: Path, server: ModelServer, **extra: Any) -> dict[str, Any]:
    """A claude-code profile whose credential file points the CLI at the server."""
    creds = tmp_path / "etc" / "creds"
    creds.mkdir(parents=True, exist_ok=True, mode=0o755)
    creds.chmod(0o755)
    env_file = creds / "anthropic.env"
    env_file.write_text(
        "ANTHROPIC_API_KEY=sk-ant-test-key-0123456789\n"
        f"ANTHROPIC_BASE_URL={server.base_url}\n"
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\n"
    )
    env_file.chmod(0o600)
    spec: dict[str, Any] = {
        "runtime": "claude-code",
        "argv": ["claude", "--model", "{model}"],
        "env_allow": [
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_BASE_URL",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        ],
        "credential_file": str(env_file),
        "limits": {
            "wall_clock_seconds": 120,
            "cpu_seconds": 120,
            "address_space_mb": 65536,
            "processes": 512,
            "open_files": 1024,
            "term_grace_seconds": 1.0,
        },
    }
    spec.update(extra)
    return spec


async def run_claude(
    tmp_path: Path,
    script: list[Turn],
    *,
    tools: tuple[str, ...],
    shell: bool = False,
    needs_shell: bool = False,
    profile_extra: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    mission: dict[str, Any] | None = None,
    quota_tokens: int = 10_000_000,
) -> tuple[Rows, int, Any, ModelServer]:
    settings = make_settings(tmp_path, runner_sandbox="required")
    rows = Rows(settings.database_path)
    with ModelServer(script) as server:
        spec = claude_profile(tmp_path, server, **(profile_extra or {}))
        spec["limits"].update(limits or {})
        write_profiles(tmp_path, {"claude": spec})
        agent = rows.agent(
            profile="claude", model=MODEL, tools=tools, shell=shell, tokens=quota_tokens
        )
        mission_id = rows.mission(**mission) if mission is not None else None
        _, conversation = rows.task(
            agent,
            "Do the work",
            "Please do it.",
            needs_shell=needs_shell,
            mission_id=mission_id,
            mission_step=1 if mission_id is not None else None,
        )
        async with running_worker(settings) as worker:
            assert worker.sandbox is not None and worker.sandbox.enforced
            outcome = await worker.run_once()
    assert conversation is not None
    return rows, conversation, outcome, server


def workspace(tmp_path: Path) -> Path:
    return tmp_path / "state" / "workspaces" / "agent-1"


async def test_a_read_only_agent_asked_for_bash_runs_nothing(tmp_path: Path) -> None:
    rows, conversation, outcome, server = await run_claude(
        tmp_path,
        [tool("Bash", {"command": "touch proof.txt", "description": "t"}), text("done")],
        tools=("read_files",),
    )
    assert outcome.status == "FAILED", outcome
    assert outcome.reason.startswith("tools_denied: Bash"), outcome.reason
    assert not (workspace(tmp_path) / "proof.txt").exists()
    first = server.messages()[0]
    assert "Bash" not in first.tools and "Read" in first.tools
    assert rows.escalations("tools_denied")
    row = rows.conversation(conversation)
    assert row["input_tokens"] == 200 and row["output_tokens"] == 100


async def test_a_shell_agent_runs_its_command_in_the_workspace_and_sandbox(
    tmp_path: Path,
) -> None:
    command = "pwd > proof.txt; touch /tmp/mc-claude-escape 2>> proof.txt; echo rc=$? >> proof.txt"
    rows, conversation, outcome, server = await run_claude(
        tmp_path,
        [tool("Bash", {"command": command, "description": "t"}), text("done")],
        tools=("read_files", "write_files", "shell"),
        shell=True,
        needs_shell=True,
    )
    assert outcome.status == "SUCCEEDED", outcome
    proof = (workspace(tmp_path) / "proof.txt").read_text()
    assert proof.splitlines()[0] == str(workspace(tmp_path).resolve())
    assert "rc=1" in proof  # writing /tmp is refused by the sandbox
    assert not Path("/tmp/mc-claude-escape").exists()
    assert "Bash" in server.messages()[0].tools
    assert rows.conversation(conversation)["cost_usd"] > 0


async def test_without_write_files_edit_is_refused_by_the_cli(tmp_path: Path) -> None:
    _, _, outcome, server = await run_claude(
        tmp_path,
        [tool("Write", {"file_path": "notes.md", "content": "x"}), text("done")],
        tools=("read_files",),
    )
    assert outcome.status == "FAILED" and "Write" in outcome.reason, outcome
    assert "Write" not in server.messages()[0].tools
    assert not (workspace(tmp_path) / "notes.md").exists()


LYING_FLAGS = [
    "--tools",
    "Bash,Write",
    "--allowedTools",
    "Bash,Write",
    "--permission-mode",
    "dontAsk",
]


def lying_profile() -> dict[str, Any]:
    """A generic profile that tells the CLI to allow Bash and Write whatever the agent
    may do: only the kernel stands between it and the host."""
    return {
        "runtime": "generic",
        "commands": "per-agent",
        "argv": [
            "claude",
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            *LYING_FLAGS,
            "--model",
            "{model}",
        ],
    }


@pytest.mark.parametrize("shell", [False, True])
async def test_a_profile_that_lies_still_cannot_run_a_shell(tmp_path: Path, shell: bool) -> None:
    """The same lying command line: a shell run executes the command, a run without
    a shell cannot start one (Landlock: no execute right outside the CLI itself)."""
    _, _, _, server = await run_claude(
        tmp_path,
        [tool("Bash", {"command": "echo hacked > proof.txt", "description": "t"}), text("done")],
        tools=("read_files", "write_files"),
        shell=shell,
        needs_shell=shell,
        profile_extra=lying_profile(),
    )
    assert "Bash" in server.messages()[0].tools  # the CLI was told to offer it
    assert (workspace(tmp_path) / "proof.txt").exists() is shell
    result = server.messages()[1].tool_results[0]
    assert result.get("is_error") is not shell, result


@pytest.mark.parametrize("write", [False, True])
async def test_a_profile_that_lies_still_cannot_write_a_read_only_workspace(
    tmp_path: Path, write: bool
) -> None:
    tools = ("read_files", "write_files") if write else ("read_files",)
    _, _, _, server = await run_claude(
        tmp_path,
        [tool("Write", {"file_path": "notes.md", "content": "x"}), text("done")],
        tools=tools,
        profile_extra=lying_profile(),
    )
    assert "Write" in server.messages()[0].tools
    assert (workspace(tmp_path) / "notes.md").exists() is write
    result = server.messages()[1].tool_results[0]
    assert result.get("is_error") is not write, result
    if not write:
        assert "EACCES" in json.dumps(result)


#: each turn: 100 000 input + 10 000 output tokens of Sonnet ($0.30 + $0.15), 0.5 s apart
def expensive_turns(count: int) -> list[Turn]:
    return [
        tool(
            "Read",
            {"file_path": "README.md"},
            input_tokens=100_000,
            output_tokens=10_000,
            delay_s=0.5,
        )
        for _ in range(count)
    ]


TURN_USD = 0.45


async def test_a_run_is_stopped_within_one_turn_of_the_mission_bound(tmp_path: Path) -> None:
    rows, conversation, outcome, server = await run_claude(
        tmp_path,
        expensive_turns(12),
        tools=("read_files",),
        mission={"cost": 1.20, "spent_cost": 0.10},
    )
    assert outcome.status == "FAILED", outcome
    assert outcome.reason.startswith("mission_bound:cost"), outcome.reason
    row = rows.conversation(conversation)
    # $1.10 were left: the run is stopped at the turn that reached it
    assert 1.10 <= row["cost_usd"] <= 1.10 + TURN_USD + 1e-6, row["cost_usd"]
    assert len(server.messages()) <= 4
    assert rows.value("SELECT status FROM missions WHERE id = 1") == "failed"
    assert rows.escalations("mission_bound")


async def test_output_over_the_cap_keeps_the_accounting(tmp_path: Path) -> None:
    long_text = "word " * 20_000  # 100 kB in one assistant message
    rows, conversation, outcome, _ = await run_claude(
        tmp_path,
        [text(long_text, input_tokens=1000, output_tokens=25_000)],
        tools=("read_files",),
        limits={"stdout_cap_bytes": 32_768},
    )
    assert outcome.status == "FAILED" and outcome.reason.startswith("output_cap"), outcome
    row = rows.conversation(conversation)
    assert row["truncated"] == 1
    assert row["input_tokens"] >= 1000 and row["output_tokens"] >= 25_000
    assert row["cost_usd"] >= (1000 * 3 + 25_000 * 15) / 1e6


def test_the_pinned_version_is_the_one_tested() -> None:
    assert VERSION == CLAUDE_CODE_VERSION == "2.1.328"


async def test_a_follow_up_resumes_the_session(tmp_path: Path) -> None:
    """A reply to a finished run continues the CLI's session: the model sees the
    earlier turn, in a fresh HOME, with only the reply as the new prompt."""
    settings = make_settings(tmp_path, runner_sandbox="required")
    rows = Rows(settings.database_path)
    with ModelServer([text("first answer"), text("second answer")]) as server:
        write_profiles(tmp_path, {"claude": claude_profile(tmp_path, server)})
        agent = rows.agent(profile="claude", model=MODEL, tools=("read_files",))
        _, first = rows.task(agent, "Summarise", "Summarise the notes.")
        async with running_worker(settings) as worker:
            assert (await worker.run_once()).status == "SUCCEEDED"
            assert first is not None
            session = rows.conversation(first)["session_id"]
            assert session and len(session) == 36
            _, second = rows.follow_up(first, "Now shorter, please.")
            outcome = await worker.run_once()
    assert outcome.status == "SUCCEEDED", outcome
    row = rows.conversation(second)
    assert row["session_id"] == session
    assert row["transcript"] == "second answer"
    resumed = server.messages()[-1]
    assert resumed.assistant_turns == 1  # the earlier turn came back with the session
    kept = list((tmp_path / "state" / "sessions" / f"agent-{agent}").rglob("*.jsonl"))
    assert [p.name for p in kept] == [f"{session}.jsonl"]


async def test_a_follow_up_without_a_kept_session_fails_clearly(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, runner_sandbox="required")
    rows = Rows(settings.database_path)
    with ModelServer([text("first answer")]) as server:
        write_profiles(tmp_path, {"claude": claude_profile(tmp_path, server)})
        agent = rows.agent(profile="claude", model=MODEL, tools=("read_files",))
        earlier, _ = rows.task(agent, "Summarise")
        # another worker ran it: its session was never kept on this Pi
        first = rows.end_run(earlier, session_id="0b0b0b0b-1111-2222-3333-444455556666")
        rows.follow_up(first, "More.")
        async with running_worker(settings) as worker:
            outcome = await worker.run_once()
    assert outcome.status == "FAILED" and not outcome.ran, outcome
    assert "session to resume" in outcome.reason
    assert not server.messages()
