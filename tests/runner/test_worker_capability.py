"""Runs get exactly the agent's capability: flags, kernel rights, live budgets,
denied tools (app/capability/model.py, app/runner/claude_code.py, docs/capability.md).

The agents here are the bundled demo agent (which speaks Claude Code's dialect)
and small scripts; the real Claude Code CLI is driven in test_real_claude_code.py.
"""

from __future__ import annotations

import asyncio
import errno
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from app.runner.sandbox import landlock_status
from tests.support.worker import (
    DEMO_ARGV,
    Rows,
    cancel_task,
    make_settings,
    profile,
    running_worker,
    write_agent,
    write_profiles,
)

LANDLOCK = landlock_status()
needs_landlock = pytest.mark.skipif(
    LANDLOCK.abi < 1, reason=f"no Landlock in this kernel: {LANDLOCK.reason}"
)


def demo_profile(**limits: Any) -> dict[str, Any]:
    spec = profile(DEMO_ARGV, **limits)
    spec.update(runtime="claude-code", commands="never", price_fallback="demo")
    return spec


# ---------------------------------------------------------------- the command line

ARGV_AGENT = """
import sys
emit(__import__("json").dumps(sys.argv[1:]))
"""


def flags_of(argv: list[str]) -> dict[str, str]:
    return {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}


@pytest.mark.parametrize(
    ("tools", "shell", "needs_shell", "offered"),
    [
        ((), False, False, ""),
        (("read_files",), False, False, "Read,Glob,Grep"),
        (("read_files", "shell"), True, True, "Read,Glob,Grep,Bash"),
        # a shell agent on a task that does not declare needs_shell: no shell
        (("read_files", "shell"), True, False, "Read,Glob,Grep"),
    ],
)
async def test_the_command_line_carries_the_capability(
    tmp_path: Path, tools: tuple[str, ...], shell: bool, needs_shell: bool, offered: str
) -> None:
    settings = make_settings(tmp_path, runner_max_turns=9)
    rows = Rows(settings.database_path)
    script = write_agent(tmp_path, "argv", ARGV_AGENT)
    spec = profile(["{python}", "-I", str(script), "--model", "{model}"])
    spec.update(runtime="claude-code", price_fallback="demo")
    write_profiles(tmp_path, {"cc": spec})
    agent = rows.agent(profile="cc", tools=tools, shell=shell)
    _, conversation = rows.task(agent, needs_shell=needs_shell)
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "SUCCEEDED", outcome
    assert conversation is not None
    argv = json.loads(rows.conversation(conversation)["transcript"])
    values = flags_of(argv)
    assert values["--tools"] == offered
    assert values["--permission-mode"] == "dontAsk"
    assert values["--max-turns"] == "9"
    assert float(values["--max-budget-usd"]) > 0
    if "Bash" not in offered:
        assert "Bash" in values["--disallowedTools"].split(",")


async def test_the_max_turns_placeholder_renders(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, runner_max_turns=12)
    rows = Rows(settings.database_path)
    script = write_agent(tmp_path, "turns", ARGV_AGENT)
    write_profiles(
        tmp_path, {"p": profile(["{python}", "-I", str(script), "--turns", "{max_turns}"])}
    )
    agent = rows.agent(profile="p")
    _, conversation = rows.task(agent)
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "SUCCEEDED", outcome
    assert conversation is not None
    assert json.loads(rows.conversation(conversation)["transcript"]) == ["--turns", "12"]


async def test_a_model_without_a_price_is_refused_before_it_runs(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    spec = demo_profile()
    del spec["price_fallback"]
    write_profiles(tmp_path, {"demo": spec})
    agent = rows.agent(model="no-such-model")
    rows.task(agent)
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "FAILED" and not outcome.ran
    assert outcome.reason is not None and outcome.reason.startswith("no_price:")
    assert rows.escalations("profile_error")


# ---------------------------------------------------------------- denied tools


async def test_a_denied_tool_is_never_a_plain_success(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    write_profiles(tmp_path, {"demo": demo_profile()})
    agent = rows.agent(tools=("read_files",))
    task, _ = rows.task(agent, "Run it", "DEMO:tool=Bash")
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "FAILED", outcome
    assert outcome.reason is not None and outcome.reason.startswith("tools_denied: Bash")
    assert rows.task_status(task) == "failed"
    (escalation,) = rows.escalations("tools_denied")
    assert json.loads(escalation["details"])["denied_tools"] == ["Bash"]
    (event,) = rows.events("conversation.failed")
    assert json.loads(event["payload"])["denied_tools"] == ["Bash"]


async def test_a_granted_tool_is_not_a_denial(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    write_profiles(tmp_path, {"demo": demo_profile()})
    agent = rows.agent(tools=("read_files",))
    rows.task(agent, "Read it", "DEMO:tool=Read")
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "SUCCEEDED", outcome


# ---------------------------------------------------------------- live budgets

#: 10 000 input + 1 000 output tokens a turn at the demo's $3/$15: $0.045 a turn
TURNS = "DEMO:turns=40\nDEMO:turn_sleep=0.2\nDEMO:usage=400000:40000"
TURN_COST = 0.045


async def test_a_run_is_stopped_within_a_turn_of_the_mission_bound(tmp_path: Path) -> None:
    # a long lease: the guard's periodic look (every lease/3) cannot be what stops it
    settings = make_settings(tmp_path, worker_lease_s=60.0)
    rows = Rows(settings.database_path)
    write_profiles(tmp_path, {"demo": demo_profile()})
    agent = rows.agent()
    mission = rows.mission(cost=0.30, spent_cost=0.10)
    _, conversation = rows.task(agent, "Spend", TURNS, mission_id=mission, mission_step=1)
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "FAILED", outcome
    assert outcome.reason == "mission_bound:cost (stopped while running)"
    assert conversation is not None
    row = rows.conversation(conversation)
    # $0.20 were left: stopped at the turn that reached it, never the whole run
    assert 0.20 <= row["cost_usd"] <= 0.20 + TURN_COST + 1e-9, row["cost_usd"]
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0
    assert rows.value("SELECT status FROM missions WHERE id = ?", (mission,)) == "failed"
    assert rows.escalations("mission_bound")
    ledger = rows.value(
        "SELECT sum(cost_usd) FROM usage_ledger WHERE conversation_id = ?", (conversation,)
    )
    assert ledger == pytest.approx(row["cost_usd"])


async def test_a_run_is_stopped_at_the_agents_daily_quota(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, worker_lease_s=60.0)
    rows = Rows(settings.database_path)
    write_profiles(tmp_path, {"demo": demo_profile()})
    agent = rows.agent(tokens=50_000)
    _, conversation = rows.task(agent, "Spend", TURNS)
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "FAILED", outcome
    assert outcome.reason == "quota_exceeded:tokens (stopped while running)"
    assert conversation is not None
    tokens = rows.value(
        "SELECT input_tokens + output_tokens FROM conversations WHERE id = ?", (conversation,)
    )
    assert 50_000 <= tokens <= 50_000 + 11_000


async def test_the_output_cap_cuts_the_transcript_not_the_accounting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    write_profiles(tmp_path, {"demo": demo_profile(stdout_cap_bytes=1024)})
    agent = rows.agent()
    _, conversation = rows.task(agent, "Talk", "DEMO:turns=30\nDEMO:usage=30000:3000")
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "FAILED", outcome
    assert outcome.reason is not None and outcome.reason.startswith("output_cap")
    assert conversation is not None
    row = rows.conversation(conversation)
    assert row["truncated"] == 1
    # the usage streamed before and after the cap was counted
    assert row["input_tokens"] >= 2_000 and row["cost_usd"] > 0


# ---------------------------------------------------------------- the kernel agrees

EXEC_AGENT = """
import errno, json, os, subprocess
seen = {}
def attempt(name, action):
    try:
        action()
        seen[name] = "ok"
    except OSError as exc:
        seen[name] = errno.errorcode.get(exc.errno, str(exc.errno))
attempt("exec_sh", lambda: subprocess.run(["/bin/sh", "-c", "exit 0"], check=True))
attempt("exec_true", lambda: subprocess.run(["/usr/bin/true"], check=True))
def write(path):
    with open(path, "w") as handle:
        handle.write("x")
attempt("write_workspace", lambda: write("proof.txt"))
attempt("write_tmpdir", lambda: write(os.path.join(os.environ["TMPDIR"], "x")))
emit(json.dumps(seen))
"""


async def kernel_run(
    tmp_path: Path, *, tools: tuple[str, ...], shell: bool, needs_shell: bool
) -> dict[str, str]:
    settings = make_settings(tmp_path, runner_sandbox="required")
    rows = Rows(settings.database_path)
    script = write_agent(tmp_path, "exec", EXEC_AGENT)
    # the script is the program (a #! line), so the sandbox lets the run read it
    script.write_text(f"#!{sys.executable} -I\n" + script.read_text())
    script.chmod(0o755)
    spec = profile([str(script)])
    spec["commands"] = "per-agent"
    write_profiles(tmp_path, {"p": spec})
    agent = rows.agent(profile="p", tools=tools, shell=shell)
    _, conversation = rows.task(agent, needs_shell=needs_shell)
    async with running_worker(settings) as worker:
        assert worker.sandbox is not None and worker.sandbox.enforced
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "SUCCEEDED", outcome
    assert conversation is not None
    seen: dict[str, str] = json.loads(rows.conversation(conversation)["transcript"])
    return seen


@needs_landlock
async def test_a_run_without_a_shell_cannot_execute_programs(tmp_path: Path) -> None:
    seen = await kernel_run(tmp_path, tools=("write_files",), shell=False, needs_shell=False)
    assert seen["exec_sh"] == seen["exec_true"] == errno.errorcode[errno.EACCES]
    assert seen["write_workspace"] == "ok" and seen["write_tmpdir"] == "ok"


@needs_landlock
async def test_a_shell_agent_on_a_task_without_needs_shell_cannot_either(tmp_path: Path) -> None:
    seen = await kernel_run(tmp_path, tools=("write_files",), shell=True, needs_shell=False)
    assert seen["exec_sh"] == errno.errorcode[errno.EACCES]


@needs_landlock
async def test_a_shell_run_executes_programs(tmp_path: Path) -> None:
    seen = await kernel_run(tmp_path, tools=("write_files",), shell=True, needs_shell=True)
    assert seen["exec_sh"] == "ok" and seen["exec_true"] == "ok"


@needs_landlock
async def test_a_run_without_write_files_has_a_read_only_workspace(tmp_path: Path) -> None:
    seen = await kernel_run(tmp_path, tools=("read_files",), shell=True, needs_shell=True)
    assert seen["write_workspace"] == errno.errorcode[errno.EACCES]
    assert seen["write_tmpdir"] == "ok"
    assert seen["exec_sh"] == "ok"


# ---------------------------------------------------------------- every ending counts


async def test_a_timed_out_run_records_the_usage_it_streamed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    write_profiles(tmp_path, {"demo": demo_profile(wall_clock_seconds=1.0)})
    agent = rows.agent()
    _, conversation = rows.task(agent, "Slow", TURNS)
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "FAILED", outcome
    assert outcome.reason is not None and outcome.reason.startswith("timeout")
    assert conversation is not None
    row = rows.conversation(conversation)
    assert row["input_tokens"] >= 10_000 and row["cost_usd"] >= TURN_COST - 1e-9
    ledger = rows.value("SELECT sum(tokens) FROM usage_ledger WHERE agent_id = ?", (agent,))
    assert ledger == row["input_tokens"] + row["output_tokens"]


async def test_a_cancelled_run_records_the_usage_it_streamed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    write_profiles(tmp_path, {"demo": demo_profile()})
    agent = rows.agent()
    task, conversation = rows.task(agent, "Slow", TURNS)
    assert conversation is not None
    async with running_worker(settings) as worker:
        run = asyncio.create_task(worker.run_once())
        await asyncio.sleep(1.0)  # a few turns streamed
        await cancel_task(worker, task)  # what the API does
        outcome = await asyncio.wait_for(run, 20)
    assert outcome is not None and outcome.status == "CANCELLED", outcome
    row = rows.conversation(conversation)
    assert row["input_tokens"] >= 10_000 and row["cost_usd"] >= TURN_COST - 1e-9
    ledger = rows.value("SELECT sum(cost_usd) FROM usage_ledger WHERE agent_id = ?", (agent,))
    assert ledger == pytest.approx(row["cost_usd"])


CRASHER = """
import json, os, signal, sys
def line(obj):
    sys.stdout.write(json.dumps(obj) + "\\n")
    sys.stdout.flush()
for i in range(3):
    usage = {"input_tokens": 10_000, "output_tokens": 1}
    line({"type": "stream_event", "event": {"type": "message_start",
          "message": {"id": f"m{i}", "usage": usage}}})
    line({"type": "stream_event", "event": {"type": "message_delta",
          "usage": {"output_tokens": 1_000}}})
os.kill(os.getpid(), signal.SIGSEGV)
"""


async def test_a_crashed_run_records_the_usage_it_streamed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    script = write_agent(tmp_path, "crash", CRASHER)
    spec = profile(["{python}", "-I", str(script)])
    spec.update(runtime="claude-code", price_fallback="demo")
    write_profiles(tmp_path, {"c": spec})
    agent = rows.agent(profile="c")
    _, conversation = rows.task(agent)
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "FAILED", outcome
    assert outcome.reason is not None and "SIGSEGV" in outcome.reason
    assert conversation is not None
    row = rows.conversation(conversation)
    assert (row["input_tokens"], row["output_tokens"]) == (30_000, 3_000)
    assert row["cost_usd"] == pytest.approx(3 * TURN_COST)
