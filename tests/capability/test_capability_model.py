"""The one effective capability: profile x agent x task (app/capability/model.py)."""

from __future__ import annotations

import pytest

from app.capability.model import (
    ProfileTraits,
    Tool,
    agent_capability,
    run_capability,
)

PER_AGENT = ProfileTraits("claude", "claude-code", "per-agent")
NEVER = ProfileTraits("demo", "claude-code", "never")
ALWAYS = ProfileTraits("custom", "generic", "always")


def test_a_read_only_agent_gets_read_only():
    cap = agent_capability(PER_AGENT, shell_access=False, allowed_tools=["read_files"])
    assert cap.tools == {Tool.READ_FILES}
    assert not cap.shell and not cap.write
    assert cap.badge == "read-only"


def test_shell_comes_from_the_flag_or_the_tool():
    by_flag = agent_capability(PER_AGENT, shell_access=True, allowed_tools=[])
    by_tool = agent_capability(PER_AGENT, shell_access=False, allowed_tools=["shell"])
    assert by_flag.shell and Tool.SHELL in by_flag.tools
    assert by_tool.shell and Tool.SHELL in by_tool.tools


def test_a_profile_that_always_runs_commands_makes_a_shell_agent():
    cap = agent_capability(ALWAYS, shell_access=False, allowed_tools=["read_files"])
    assert cap.shell
    assert "always runs commands" in cap.basis


def test_a_profile_that_never_runs_commands_takes_the_shell_away():
    cap = agent_capability(NEVER, shell_access=True, allowed_tools=["shell", "write_files"])
    assert not cap.shell and Tool.SHELL not in cap.tools
    assert cap.write


def test_an_unknown_profile_fails_closed():
    cap = agent_capability(None, shell_access=False, allowed_tools=[])
    assert cap.shell


def test_unknown_tool_names_are_dropped():
    cap = agent_capability(PER_AGENT, shell_access=False, allowed_tools=["root", 3, "web_fetch"])
    assert cap.tools == {Tool.WEB_FETCH}


@pytest.mark.parametrize("needs_shell", [False, True])
def test_a_run_has_a_shell_only_when_the_task_needs_one(needs_shell):
    agent = agent_capability(PER_AGENT, shell_access=True, allowed_tools=["write_files"])
    run = run_capability(agent, PER_AGENT, task_needs_shell=needs_shell)
    assert run.shell is needs_shell
    assert (Tool.SHELL in run.tools) is needs_shell
    assert run.write


def test_a_run_of_an_always_profile_keeps_its_shell():
    agent = agent_capability(ALWAYS, shell_access=False, allowed_tools=[])
    assert run_capability(agent, ALWAYS, task_needs_shell=False).shell
