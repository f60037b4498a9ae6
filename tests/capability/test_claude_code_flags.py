"""Capability to Claude Code command line (app/runner/claude_code.py)."""

from __future__ import annotations

import pytest

from app.capability.model import ProfileTraits, agent_capability
from app.runner.claude_code import command_line

PER_AGENT = ProfileTraits("claude", "claude-code", "per-agent")


def flags(argv: list[str]) -> dict[str, str]:
    """The value after each option that takes one."""
    return {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}


def line(tools: list[str], shell: bool = False, budget: float | None = None) -> list[str]:
    cap = agent_capability(PER_AGENT, shell_access=shell, allowed_tools=tools)
    return command_line(["claude", "--model", "m"], cap, max_turns=7, max_budget_usd=budget)


@pytest.mark.parametrize(
    ("tools", "shell", "granted"),
    [
        ([], False, ""),
        (["read_files"], False, "Read,Glob,Grep"),
        (
            ["read_files", "write_files"],
            False,
            "Read,Glob,Grep,Edit,Write,MultiEdit,NotebookEdit",
        ),
        (["web_fetch", "web_search"], False, "WebSearch,WebFetch"),
        (["read_files", "shell"], True, "Read,Glob,Grep,Bash"),
    ],
)
def test_exactly_the_granted_tools_are_offered_and_approved(tools, shell, granted):
    argv = line(tools, shell)
    values = flags(argv)
    assert values["--tools"] == granted
    if granted:
        assert values["--allowedTools"] == granted
    else:
        assert "--allowedTools" not in argv
    denied = set(values["--disallowedTools"].split(","))
    assert not denied & set(filter(None, granted.split(",")))
    if not shell:
        assert "Bash" in denied
    assert {"Task", "Agent"} <= denied


def test_nothing_prompts_and_nothing_bypasses():
    argv = line(["read_files"])
    values = flags(argv)
    assert values["--permission-mode"] == "dontAsk"
    assert values["--permission-prompts"] == "none"
    assert values["--output-format"] == "stream-json"
    assert values["--max-turns"] == "7"
    assert "--restricted" in argv and "--strict-mcp-config" in argv
    assert values["--setting-sources"] == ""
    assert not any("dangerously" in a or "bypassPermissions" in a for a in argv)


def test_the_budget_left_is_passed_when_there_is_one():
    assert "--max-budget-usd" not in line([])
    assert flags(line([], budget=1.25))["--max-budget-usd"] == "1.250000"
    assert flags(line([], budget=-3))["--max-budget-usd"] == "0.000000"
