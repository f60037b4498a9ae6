"""The worker end to end with the bundled demo agent: claim, run, store, consequences."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from app.profiles.profiles import Limits
from app.runner import demo_agent
from app.runner.plan import effective_limits, workspace_for
from tests.support.worker import Rows, make_settings, running_worker


async def test_demo_agent_end_to_end(tmp_path: Path) -> None:
    # no profiles file at settings.profiles_path: the bundled example (demo) is used
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(identity="You are a careful tester.")
    first, conversation = rows.task(agent, "Summarise the backlog", "three items are open")
    second, none = rows.task(agent, "Follow up", depends_on=(first,))
    assert none is None and conversation is not None

    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
        assert outcome is not None and outcome.status == "SUCCEEDED" and outcome.ran
        assert await worker.run_once() is not None  # the dependent was queued: it runs too
        assert await worker.run_once() is None  # nothing left

    row = rows.conversation(conversation)
    assert row["status"] == "SUCCEEDED" and row["reason"] is None
    assert row["lease_owner"] == worker.id and row["attempt"] == 1
    assert row["started_at"] and row["finished_at"] and row["heartbeat_at"]
    assert row["transcript"].startswith("Demo agent (demo-1) read ")
    assert row["exit_code"] == 0 and row["truncated"] == 0
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0
    expected_cost = demo_agent.cost_usd(row["input_tokens"], row["output_tokens"])
    assert row["cost_usd"] == expected_cost
    assert rows.task_status(first) == "succeeded"

    ledger = rows.all("SELECT * FROM usage_ledger WHERE conversation_id = ?", (conversation,))
    assert len(ledger) == 1
    assert ledger[0]["tokens"] == row["input_tokens"] + row["output_tokens"]
    assert ledger[0]["cost_usd"] == expected_cost and ledger[0]["agent_id"] == agent
    assert ledger[0]["day"] == row["finished_at"][:10]

    # the dependent task got its conversation queued (and then ran)
    dependent = rows.one("SELECT * FROM conversations WHERE task_id = ?", (second,))
    assert dependent is not None and dependent["status"] == "SUCCEEDED"
    assert rows.task_status(second) == "succeeded"

    types = [(e["type"], e["subject_id"]) for e in rows.events()]
    for wanted in [
        ("conversation.started", conversation),
        ("conversation.succeeded", conversation),
        ("conversation.queued", dependent["id"]),
    ]:
        assert wanted in types
    changes = [json.loads(e["payload"]) for e in rows.events("task.status_changed")]
    assert {"from": "queued", "to": "in_progress"} in changes
    assert {"from": "in_progress", "to": "succeeded"} in changes
    queued = [json.loads(e["payload"])["task_id"] for e in rows.events("conversation.queued")]
    assert queued == [first, second]  # at its creation, and when its dependency succeeded
    actions = [r[0] for r in rows.all("SELECT action FROM audit_log ORDER BY id")]
    assert actions.count("conversation.started") == 2
    assert actions.count("conversation.finished") == 2

    state = rows.heartbeat_state(worker.id)
    assert state["running"] == []
    assert state["circuits"]["demo"]["state"] == "closed"


async def test_prompt_holds_identity_memory_context_mission_and_task(tmp_path: Path) -> None:
    """The demo agent's reply echoes the word/line counts and a digest of what it read;
    a fake agent that saves its stdin shows the sections themselves."""
    from tests.support.worker import script_profile, write_agent, write_profiles

    seen = tmp_path / "prompt.txt"
    script = write_agent(
        tmp_path,
        "saver",
        f"""
        import sys
        data = sys.stdin.read()
        open({str(seen)!r}, "w").write(data)
        emit("saved")
        """,
    )
    write_profiles(tmp_path, {"saver": script_profile(script)})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="saver", identity="IDENTITY-TEXT: be brief")
    for index in range(30):
        rows.memory(agent, f"memory-entry-{index:02d}")
    project = rows.project(documents=(("Readme", "PROJECT-CONTEXT-BODY"),))
    mission = rows.mission(
        goal="MISSION-GOAL",
        steps=[
            {"title": "first", "agent_id": agent, "instructions": ""},
            {"title": "STEP-TWO-TITLE", "agent_id": agent, "instructions": "STEP-TWO-HOW"},
        ],
    )
    rows.task(
        agent,
        "TASK-TITLE",
        "TASK-DESCRIPTION",
        mission_id=mission,
        mission_step=2,
        project_id=project,
    )
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "SUCCEEDED", outcome
    prompt = seen.read_text()
    for part in [
        "IDENTITY-TEXT: be brief",
        "PROJECT-CONTEXT-BODY",
        "MISSION-GOAL",
        "step 2 of 2: STEP-TWO-TITLE",
        "STEP-TWO-HOW",
        "Title: TASK-TITLE",
        "TASK-DESCRIPTION",
        "memory-entry-29",
        "memory-entry-10",
    ]:
        assert part in prompt, part
    assert "memory-entry-09" not in prompt  # bounded: the latest 20 entries only
    assert prompt.index("memory-entry-10") < prompt.index("memory-entry-29")  # oldest first
    # the workspace of a project task, private
    workspace = settings.state_dir / "workspaces" / f"project-{project}"
    assert stat.S_IMODE(workspace.stat().st_mode) == 0o700
    assert stat.S_IMODE(workspace.parent.stat().st_mode) == 0o700


def test_workspace_refuses_a_planted_symlink(tmp_path: Path) -> None:
    state = tmp_path / "state"
    real = workspace_for(state, project_id=None, agent_id=1)
    assert real.name == "agent-1"
    (state / "workspaces" / "project-7").symlink_to(tmp_path)
    try:
        workspace_for(state, project_id=7, agent_id=1)
    except Exception as exc:
        assert "symlink" in str(exc)
    else:
        raise AssertionError("a symlinked workspace was accepted")


def test_wall_clock_is_cut_to_the_mission_step_bound() -> None:
    limits = Limits(wall_clock_seconds=900)
    assert effective_limits(limits, mission_step_minutes=None, ceiling_minutes=15) == limits
    cut = effective_limits(limits, mission_step_minutes=2, ceiling_minutes=15)
    assert cut.wall_clock_seconds == 120
    # a stored bound above the configured ceiling does not widen it
    ceiling = effective_limits(limits, mission_step_minutes=60, ceiling_minutes=5)
    assert ceiling.wall_clock_seconds == 300
    short = effective_limits(
        Limits(wall_clock_seconds=30), mission_step_minutes=2, ceiling_minutes=15
    )
    assert short.wall_clock_seconds == 30
