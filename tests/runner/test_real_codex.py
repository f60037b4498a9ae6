"""The real Codex CLI through the real worker and sandbox, against a scripted
Responses API on loopback (tests/support/openai_server.py).

The CLI is the pinned npm package (scripts/install-test-deps.sh installs it); the
profile runs its native binary (the npm ``codex`` is a Node wrapper that would
need to execute Node and then the binary: a run without the shell may execute
only its program). The provider comes from the profile's ``options`` and is
written into ``$HOME/.codex/config.toml`` by the runtime; nothing leaves loopback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from app.runner.sandbox import landlock_status
from tests.support.agent_cli import pinned, version_of
from tests.support.openai_server import FREEFORM, OpenAIServer, Turn, text, tool
from tests.support.worker import Rows, make_settings, running_worker

MODEL = "gpt-5.5"


CODEX_VERSION = pinned("CODEX_VERSION")


def native_codex() -> Path | None:
    """The native binary inside the npm package (what a profile should run)."""
    wrapper = shutil.which("codex")
    if wrapper is None:
        return None
    package = Path(wrapper).resolve().parent.parent
    found = sorted(package.glob("node_modules/@openai/codex-linux-*/vendor/*/bin/codex"))
    return found[0] if found else None


VERSION = version_of(native_codex(), word=-1)
pytestmark = [
    pytest.mark.skipif(
        VERSION != CODEX_VERSION,
        reason=f"Codex {CODEX_VERSION} is not installed (found {VERSION});"
        " scripts/install-test-deps.sh installs it",
    ),
    pytest.mark.skipif(landlock_status().abi < 1, reason="no Landlock in this kernel"),
    pytest.mark.slow,
]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def write_profile(tmp_path: Path, server: OpenAIServer) -> None:
    creds = tmp_path / "etc" / "creds"
    creds.mkdir(parents=True, exist_ok=True, mode=0o755)
    creds.chmod(0o755)
    (tmp_path / "etc").chmod(0o755)
    env_file = creds / "openai.env"
    env_file.write_text("OPENAI_API_KEY=sk-test-key-0123456789\n")
    env_file.chmod(0o600)
    spec: dict[str, Any] = {
        "runtime": "codex",
        "argv": [str(native_codex())],
        "env_allow": ["OPENAI_API_KEY"],
        "credential_file": str(env_file),
        "options": {
            "provider": "scripted",
            "base_url": server.base_url,
            "env_key": "OPENAI_API_KEY",
        },
    }
    limits = {
        "wall_clock_seconds": 120,
        "cpu_seconds": 120,
        "address_space_mb": 65536,
        "processes": 512,
        "open_files": 1024,
        "term_grace_seconds": 1.0,
    }
    lines = ["[profiles.codex]"]
    lines += [f"{key} = {_toml(value)}" for key, value in spec.items()]
    lines += ["[profiles.codex.limits]"]
    lines += [f"{key} = {_toml(value)}" for key, value in limits.items()]
    path = tmp_path / "etc" / "profiles.toml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)


async def run_codex(
    tmp_path: Path,
    script: list[Turn],
    *,
    tools: tuple[str, ...],
    shell: bool = False,
    needs_shell: bool = False,
    mission: dict[str, Any] | None = None,
) -> tuple[Rows, int, Any, OpenAIServer]:
    # a long lease: the guard's periodic look cannot stop the run within a turn,
    # only the live check of the usage read from the stream can
    settings = make_settings(tmp_path, runner_sandbox="required", worker_lease_s=60.0)
    rows = Rows(settings.database_path)
    with OpenAIServer(script) as server:
        write_profile(tmp_path, server)
        agent = rows.agent(profile="codex", model=MODEL, tools=tools, shell=shell, tokens=10**7)
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


async def test_a_plain_answer_is_recorded_with_its_tokens_and_price(tmp_path: Path) -> None:
    rows, conversation, outcome, server = await run_codex(
        tmp_path,
        [text("The answer is 42.", input_tokens=1000, output_tokens=200, cache_read_tokens=500)],
        tools=("read_files",),
    )
    assert outcome.status == "SUCCEEDED", outcome
    row = rows.conversation(conversation)
    # 1000 fresh + 500 cached input, 200 output; priced from the table (gpt-5*)
    assert row["input_tokens"] == 1500 and row["output_tokens"] == 200
    expected = (1000 * 1.25 + 500 * 0.125 + 200 * 10.0) / 1e6
    assert row["cost_usd"] == pytest.approx(expected)
    assert "The answer is 42." in json.dumps(dict(row))
    first = server.turns()[0]
    assert first.model == MODEL
    assert "exec_command" not in first.tools  # no shell for this run


async def test_a_shell_agent_runs_its_command_in_the_workspace_and_sandbox(
    tmp_path: Path,
) -> None:
    command = "pwd > proof.txt; touch /tmp/mc-codex-escape 2>> proof.txt; echo rc=$? >> proof.txt"
    rows, conversation, outcome, server = await run_codex(
        tmp_path,
        [tool("exec_command", {"cmd": command}), text("done")],
        tools=("read_files", "write_files", "shell"),
        shell=True,
        needs_shell=True,
    )
    assert outcome.status == "SUCCEEDED", outcome
    proof = (workspace(tmp_path) / "proof.txt").read_text()
    assert proof.splitlines()[0] == str(workspace(tmp_path).resolve())
    assert "rc=1" in proof  # writing /tmp is refused
    assert not Path("/tmp/mc-codex-escape").exists()
    assert "exec_command" in server.turns()[0].tools
    assert rows.conversation(conversation)["cost_usd"] > 0


async def test_a_shell_agent_without_write_files_cannot_change_its_workspace(
    tmp_path: Path,
) -> None:
    """Codex's own sandbox cannot run inside Landlock, so a shell run's commands are
    held by the kernel sandbox alone: without write_files the workspace is read-only."""
    _, _, outcome, server = await run_codex(
        tmp_path,
        [tool("exec_command", {"cmd": "touch proof.txt; echo rc=$?"}), text("done")],
        tools=("read_files", "shell"),
        shell=True,
        needs_shell=True,
    )
    assert outcome.status == "SUCCEEDED", outcome
    assert not (workspace(tmp_path) / "proof.txt").exists()
    output = server.turns()[1].tool_outputs[0]
    assert "Permission denied" in output and "rc=1" in output, output


async def test_a_read_only_agent_asked_for_a_command_runs_nothing(tmp_path: Path) -> None:
    rows, conversation, outcome, server = await run_codex(
        tmp_path,
        [tool("exec_command", {"cmd": "touch proof.txt"}), text("done")],
        tools=("read_files",),
    )
    assert outcome.status == "FAILED", outcome
    assert outcome.reason.startswith("tools_denied: exec_command"), outcome.reason
    assert not (workspace(tmp_path) / "proof.txt").exists()
    assert "exec_command" not in server.turns()[0].tools
    assert rows.escalations("tools_denied")
    row = rows.conversation(conversation)
    assert row["input_tokens"] == 200 and row["output_tokens"] == 100


def patch(*files: str) -> Turn:
    """Codex's freeform apply_patch tool, adding each file with one line."""
    body = "".join(f"*** Add File: {name}\n+hello\n" for name in files)
    return tool("apply_patch", {FREEFORM: f"*** Begin Patch\n{body}*** End Patch\n"})


async def test_an_agent_with_write_files_but_no_shell_edits_only_its_workspace(
    tmp_path: Path,
) -> None:
    _, _, outcome, server = await run_codex(
        tmp_path,
        [patch("notes.md"), patch("/tmp/mc-codex-patch-escape"), text("done")],
        tools=("read_files", "write_files"),
    )
    assert outcome.status == "SUCCEEDED", outcome
    assert "exec_command" not in server.turns()[0].tools
    assert (workspace(tmp_path) / "notes.md").read_text() == "hello\n"
    assert not Path("/tmp/mc-codex-patch-escape").exists()  # the kernel refuses it
    assert "Success" not in server.turns()[2].tool_outputs[-1]


async def test_a_read_only_agent_asked_for_a_patch_changes_nothing(tmp_path: Path) -> None:
    rows, _, outcome, _ = await run_codex(
        tmp_path, [patch("notes.md"), text("done")], tools=("read_files",)
    )
    assert outcome.status == "FAILED", outcome
    assert outcome.reason.startswith("tools_denied: apply_patch"), outcome.reason
    assert not (workspace(tmp_path) / "notes.md").exists()
    assert rows.escalations("tools_denied")


#: each turn: 100 000 input + 10 000 output tokens of gpt-5 ($0.125 + $0.10), 0.5 s apart
TURN_USD = 0.225


def expensive_turns(count: int) -> list[Turn]:
    return [
        tool("exec_command", {"cmd": "true"}, input_tokens=100_000, output_tokens=10_000)
        if i == 0
        else tool(
            "exec_command",
            {"cmd": f"echo {i}"},
            input_tokens=100_000,
            output_tokens=10_000,
            delay_s=0.5,
        )
        for i in range(count)
    ]


async def test_a_run_is_stopped_within_one_turn_of_the_mission_bound(tmp_path: Path) -> None:
    """Codex prints its usage once, at the end: the stop comes from the usage read
    live from its session file, and the spend counts against the mission's bound
    like any other runtime's (the mission's recorded spend)."""
    rows, conversation, outcome, server = await run_codex(
        tmp_path,
        expensive_turns(12),
        tools=("read_files", "shell"),
        shell=True,
        needs_shell=True,
        mission={"cost": 0.60, "spent_cost": 0.10},
    )
    assert outcome.status == "FAILED", outcome
    assert outcome.reason.startswith("mission_bound:cost"), outcome.reason
    row = rows.conversation(conversation)
    # $0.50 were left: the run is stopped at the turn that reached it
    assert 0.50 <= row["cost_usd"] <= 0.50 + TURN_USD + 1e-6, row["cost_usd"]
    assert len(server.turns()) <= 4
    spent = rows.value("SELECT spent_cost_usd FROM missions WHERE id = 1")
    assert spent == pytest.approx(0.10 + row["cost_usd"])
    assert rows.value("SELECT status FROM missions WHERE id = 1") == "failed"
    assert rows.escalations("mission_bound")


def test_the_pinned_version_is_the_one_tested() -> None:
    assert VERSION == CODEX_VERSION == "0.169.0"
