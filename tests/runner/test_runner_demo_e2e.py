"""The demo agent end to end: profiles -> environment -> run_confined -> output parsing."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from app.profiles.environment import build_child_env
from app.profiles.profiles import EXAMPLE_PROFILES_PATH, Profile, load_profiles, render_argv
from app.runner import demo_agent
from app.runner.output import AgentReply, reply_from_run
from app.runner.process import RunResult, run_confined


@pytest.fixture
def demo(tmp_path: Path) -> Profile:
    etc = tmp_path / "etc"
    etc.mkdir(mode=0o755)
    etc.chmod(0o755)
    path = etc / "profiles.toml"
    shutil.copyfile(EXAMPLE_PROFILES_PATH, path)
    path.chmod(0o644)
    return load_profiles(path, require_root_owned=True)["demo"]


def run_demo(
    profile: Profile, workspace: Path, prompt: str, *, model: str = "demo-1", **limits: object
) -> tuple[RunResult, AgentReply]:
    argv = render_argv(profile, workspace=workspace, model=model)
    env = build_child_env(profile, require_root_owned=True)
    effective = profile.limits.model_copy(update={"term_grace_seconds": 0.3, **limits})
    run = asyncio.run(
        run_confined(argv, stdin_data=prompt.encode(), env=env, cwd=workspace, limits=effective)
    )
    return run, reply_from_run(run)


def test_demo_run_end_to_end(demo, workspace):
    prompt = "Summarise the backlog\nthree items are open\n"
    run, reply = run_demo(demo, workspace, prompt)
    assert run.ok, (run.reason, run.stderr)
    assert not reply.is_error
    assert reply.text.startswith(
        'Demo agent (demo-1) read 7 words in 2 lines. First line: "Summarise'
    )
    assert reply.input_tokens == demo_agent.estimate_tokens(prompt)
    assert reply.output_tokens == demo_agent.estimate_tokens(reply.text)
    assert reply.cost_usd == demo_agent.cost_usd(reply.input_tokens, reply.output_tokens)
    assert reply.cost_usd > 0
    assert reply.num_turns == 1 and reply.subtype == "success"
    assert run.group_clean


def test_demo_output_matches_the_claude_cli_shape(demo, workspace):
    run, _ = run_demo(demo, workspace, "hello")
    obj = json.loads(run.stdout)
    assert {
        "type",
        "subtype",
        "is_error",
        "result",
        "session_id",
        "num_turns",
        "duration_ms",
        "total_cost_usd",
        "usage",
    } <= set(obj)
    assert obj["type"] == "result" and obj["is_error"] is False
    assert {"input_tokens", "output_tokens"} <= set(obj["usage"])
    assert run.stdout.count(b"\n") == 1  # exactly one JSON object


def test_demo_is_deterministic(demo, workspace):
    first, _ = run_demo(demo, workspace, "same prompt")
    second, _ = run_demo(demo, workspace, "same prompt")
    other, _ = run_demo(demo, workspace, "another prompt")
    assert first.stdout == second.stdout
    assert json.loads(first.stdout)["session_id"] != json.loads(other.stdout)["session_id"]


def test_demo_fail_switch(demo, workspace):
    run, reply = run_demo(demo, workspace, "do the thing\nDEMO:fail\n")
    assert run.exit_code == 1
    assert reply.is_error
    assert "exited with code 1" in (reply.error_reason or "")
    assert "error_during_execution" in (reply.error_reason or "")
    assert reply.input_tokens > 0  # a failed run still reports (and costs) usage


def test_demo_garbage_switch(demo, workspace):
    run, reply = run_demo(demo, workspace, "DEMO:garbage")
    assert run.exit_code == 0
    assert reply.is_error and "not a claude-json result" in (reply.error_reason or "")


def test_demo_usage_switch_reports_the_given_usage(demo, workspace):
    _, reply = run_demo(demo, workspace, "big job\nDEMO:usage=400000:200000\n")
    assert (reply.input_tokens, reply.output_tokens) == (400_000, 200_000)
    assert reply.cost_usd == pytest.approx(1.2 + 3.0)


def test_demo_sleep_switch_times_out(demo, workspace):
    run, reply = run_demo(demo, workspace, "DEMO:sleep=30", wall_clock_seconds=1.0)
    assert run.timed_out and reply.is_error
    assert "wall-clock limit" in (reply.error_reason or "")


def test_demo_flood_switch_is_truncated(demo, workspace):
    run, reply = run_demo(demo, workspace, "DEMO:flood=3000000", stdout_cap_bytes=100_000)
    assert run.truncated and reply.is_error and reply.raw_truncated


def test_demo_sees_only_the_runner_environment(demo, workspace, monkeypatch):
    monkeypatch.setenv("MC_SECRET_KEY", "worker-secret")
    _, reply = run_demo(demo, workspace, "DEMO:env")
    assert reply.text.endswith("Environment names: HOME, LANG, PATH, TMPDIR.")


def test_demo_stderr_switch(demo, workspace):
    run, _ = run_demo(demo, workspace, "DEMO:stderr=warming up")
    assert run.stderr == b"warming up\n"


def test_demo_agent_in_process():
    switches = demo_agent.parse_switches("x\nDEMO:usage=bad\nDEMO:sleep=-5\nDEMO:unknown\n")
    assert switches.usage is None and switches.sleep_s == 0.0
    result = demo_agent.build_result("hello world", "m", switches)
    assert result["result"].startswith("Demo agent (m) read 2 words in 1 lines.")
