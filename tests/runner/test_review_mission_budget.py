"""A review run of a mission step's work spends the mission's bounds (docs/missions.md,
"Review gate"): its usage lands on the mission's ``spent_*`` and ledger, the live
budget stops it at the mission's bound, a review run that takes the mission over a
bound fails the mission as a step's run would; yet the review task is no step of
the mission: it neither counts as one, advances the steps nor, when it fails,
fails the mission. Real worker, real SQLite, scripted agents and the demo agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.missions import steps
from app.missions import store as mission_store
from app.tasks import review
from app.tasks.review_verdict import Verdict
from tests.runner.test_mission_steps import drive
from tests.support.api import caller
from tests.support.worker import (
    DEMO_ARGV,
    Rows,
    make_settings,
    profile,
    running_worker,
    script_profile,
    write_agent,
    write_profiles,
)

#: One program for both roles. A review run (its prompt shows "The work to review")
#: answers as review.json says (reply, tokens, cost, error); a work run is cheap.
AGENT = """
import json, sys
from pathlib import Path
here = Path(sys.argv[0]).parent.parent
prompt = sys.stdin.read()
if "# The work to review" in prompt:
    (here / "review_prompt.txt").write_text(prompt)
    spec = json.loads((here / "review.json").read_text())
    emit(spec["reply"], tokens_in=spec["tokens_in"], tokens_out=spec["tokens_out"],
         cost=spec["cost"], error=spec.get("error", False))
    if spec.get("error"):
        sys.exit(3)
else:
    emit("work done", tokens_in=3, tokens_out=4, cost=0.001)
"""

APPROVE = "VERDICT: APPROVE\nGood."
#: the work run's usage (AGENT above)
WORK_TOKENS, WORK_COST = 7, 0.001

#: the demo agent's live-budget switches (docs/capability.md): 10 000 input + 1 000
#: output tokens a turn at the demo's $3/$15, $0.045 a turn, 0.2 s apart
TURNS = "DEMO:turns=40\nDEMO:turn_sleep=0.2\nDEMO:usage=400000:40000"
TURN_COST = 0.045


def _review_step(builder: int, reviewer: int) -> list[dict[str, Any]]:
    return [
        {
            "title": "Build",
            "agent_id": builder,
            "instructions": "build",
            "review": {"agent_id": reviewer, "human": False, "max_cycles": 3},
        }
    ]


class Bench:
    """A one-step mission whose step is reviewed by another agent."""

    def __init__(self, tmp_path: Path, **mission: Any) -> None:
        self.tmp = tmp_path
        self.settings = make_settings(tmp_path, worker_lease_s=60.0)
        self.rows = Rows(self.settings.database_path)
        script = write_agent(tmp_path, "scripted", AGENT)
        demo = profile(DEMO_ARGV)
        demo.update(runtime="claude-code", commands="never", price_fallback="demo")
        # the scripted agents run no commands: an automatic review run with a shell
        # would wait for a person (app/tasks/approval.py)
        write_profiles(
            tmp_path,
            {"scripted": {**script_profile(script), "commands": "per-agent"}, "demo": demo},
        )
        self.builder = self.rows.agent("builder", profile="scripted")
        reviewer_profile = mission.pop("reviewer_profile", "scripted")
        self.reviewer = self.rows.agent(
            "reviewer", profile=reviewer_profile, identity=mission.pop("reviewer_identity", None)
        )
        self.mission = self.rows.mission(
            status="approved", steps=_review_step(self.builder, self.reviewer), **mission
        )

    def review_replies(
        self, reply: str, *, tokens: tuple[int, int], cost: float, **more: Any
    ) -> None:
        spec = {"reply": reply, "tokens_in": tokens[0], "tokens_out": tokens[1], "cost": cost}
        (self.tmp / "review.json").write_text(json.dumps({**spec, **more}))

    def mission_row(self) -> Any:
        row = self.rows.one(
            "SELECT status, spent_tokens, spent_cost_usd FROM missions WHERE id = ?",
            (self.mission,),
        )
        assert row is not None
        return row

    def step_task(self) -> int:
        """The mission's one task (the step's): the review task is not the mission's."""
        (row,) = self.rows.all(
            "SELECT id, mission_step FROM tasks WHERE mission_id = ?", (self.mission,)
        )
        assert row["mission_step"] == 1
        return int(row["id"])

    def review_runs(self) -> list[Any]:
        return self.rows.all(
            "SELECT c.id, c.status, c.reason, c.cost_usd, c.input_tokens + c.output_tokens"
            " AS tokens, u.mission_id AS ledger_mission FROM conversations c"
            " JOIN tasks t ON t.id = c.task_id LEFT JOIN usage_ledger u"
            " ON u.conversation_id = c.id WHERE t.reviews_task_id IS NOT NULL ORDER BY c.id"
        )

    async def step_progress(self, worker: Any) -> tuple[set[int], int, Any]:
        """What the mission's steps read: succeeded steps, tasks created, the next step."""
        async with worker.ctx.db.read() as conn:
            done = await mission_store.steps_with_succeeded_task(conn, self.mission)
            row = await mission_store.mission_row_tx(conn, self.mission)
            assert row is not None
            return done, int(row["tasks_created"]), await steps.next_step(conn, self.mission)


async def test_a_review_runs_spend_lands_on_the_mission(tmp_path: Path) -> None:
    bench = Bench(tmp_path)
    bench.review_replies(APPROVE, tokens=(1000, 200), cost=0.25)
    async with running_worker(bench.settings) as worker:
        await drive(worker, rounds=20)
        done, created, _ = await bench.step_progress(worker)
    ((_, status, _, cost, tokens, ledger_mission),) = bench.review_runs()
    assert (status, tokens, cost) == ("SUCCEEDED", 1200, pytest.approx(0.25))
    # the ledger row names the mission, and the running totals grew by both runs
    assert ledger_mission == bench.mission
    mission = bench.mission_row()
    assert mission["spent_tokens"] == WORK_TOKENS + 1200
    assert mission["spent_cost_usd"] == pytest.approx(WORK_COST + 0.25)
    assert bench.rows.value(
        "SELECT sum(tokens) FROM usage_ledger WHERE mission_id = ?", (bench.mission,)
    ) == (WORK_TOKENS + 1200)
    # the approval completed the step, and the step alone: one task, one step
    assert mission["status"] == "succeeded"
    assert bench.rows.task_status(bench.step_task()) == "succeeded"
    assert (done, created) == ({1}, 1)
    # the reviewer is told the mission, not that it runs one of its steps
    prompt = (tmp_path / "review_prompt.txt").read_text()
    assert "# Mission\nMission: m\nGoal: Ship the thing" in prompt
    assert "This is step" not in prompt


async def test_a_review_run_is_stopped_at_the_missions_bound(tmp_path: Path) -> None:
    """The live budget of a review run holds the mission's bound, as a step's does."""
    bench = Bench(
        tmp_path,
        cost=0.30,
        spent_cost=0.10,
        reviewer_profile="demo",
        reviewer_identity=TURNS,  # the demo agent reads its switches from the prompt
    )
    async with running_worker(bench.settings) as worker:
        await drive(worker, rounds=20)
        done, created, upcoming = await bench.step_progress(worker)
    ((conversation, status, reason, cost, _, ledger_mission),) = bench.review_runs()
    assert status == "FAILED"
    assert reason == "mission_bound:cost (stopped while running)"
    # about $0.20 were left: stopped at the turn that reached it, not after 40 turns
    left = 0.30 - 0.10 - WORK_COST
    assert left <= cost <= left + TURN_COST + 1e-9, cost
    assert ledger_mission == bench.mission
    mission = bench.mission_row()
    assert mission["status"] == "failed"
    assert mission["spent_cost_usd"] == pytest.approx(0.10 + WORK_COST + cost)
    (failed,) = bench.rows.events("mission.failed")
    assert json.loads(failed["payload"])["reason"] == "mission_bound:cost"
    subjects = {
        (e["subject_type"], e["subject_id"]) for e in bench.rows.escalations("mission_bound")
    }
    assert subjects == {("conversation", conversation), ("mission", bench.mission)}
    # the work was not approved: the failed review hands it to a person; no step moved
    step = bench.step_task()
    assert bench.rows.task_status(step) == "in_progress"
    assert [
        tuple(r)
        for r in bench.rows.all("SELECT verdict FROM review_verdicts WHERE task_id = ?", (step,))
    ] == [("review_failed",)]
    assert (done, created, upcoming) == (set(), 1, None)


async def test_a_review_run_over_the_bound_fails_the_mission_it_approves(tmp_path: Path) -> None:
    """Over the bound after the run (no live stop: one final result), the approval
    does not complete the mission: it fails with the bound named, once."""
    bench = Bench(tmp_path, tokens=1000)
    bench.review_replies(APPROVE, tokens=(4000, 1000), cost=0.01)
    async with running_worker(bench.settings) as worker:
        await drive(worker, rounds=20)
    ((_, status, _, _, tokens, ledger_mission),) = bench.review_runs()
    assert (status, tokens, ledger_mission) == ("SUCCEEDED", 5000, bench.mission)
    mission = bench.mission_row()
    assert mission["spent_tokens"] == WORK_TOKENS + 5000
    assert mission["status"] == "failed"
    (failed,) = bench.rows.events("mission.failed")
    assert json.loads(failed["payload"])["reason"] == "mission_bound:tokens"
    (escalation,) = bench.rows.escalations("mission_bound")
    assert (escalation["subject_type"], escalation["subject_id"]) == ("mission", bench.mission)
    assert not bench.rows.events("mission.succeeded")
    # the work itself was approved, as a step's run over the bound still succeeds
    assert bench.rows.task_status(bench.step_task()) == "succeeded"


async def test_a_review_task_is_no_step_of_the_mission(tmp_path: Path) -> None:
    """A failed review run spends the mission but does not fail it (a failed step
    would); the step's progress follows the reviewed task only."""
    bench = Bench(tmp_path)
    bench.review_replies("crashed", tokens=(300, 50), cost=0.02, error=True)
    async with running_worker(bench.settings) as worker:
        await drive(worker, rounds=20)
        step = bench.step_task()
        review_task = int(
            bench.rows.value("SELECT id FROM tasks WHERE reviews_task_id = ?", (step,))
        )
        assert bench.rows.task_status(review_task) == "failed"
        review_row = bench.rows.one(
            "SELECT mission_id, mission_step FROM tasks WHERE id = ?", (review_task,)
        )
        assert review_row is not None and tuple(review_row) == (None, None)
        mission = bench.mission_row()
        assert mission["status"] == "running"
        assert mission["spent_tokens"] == WORK_TOKENS + 350
        assert bench.rows.task_status(step) == "in_progress"
        assert await bench.step_progress(worker) == (set(), 1, None)
        (waiting,) = bench.rows.escalations("review_waiting")
        assert waiting["subject_id"] == step
        # a person approves: the step (the reviewed task) completes the mission
        await review.human_verdict(worker.ctx, step, Verdict.APPROVE, "", caller("alice"))
        done, created, upcoming = await bench.step_progress(worker)
    assert (done, created, upcoming) == ({1}, 1, None)
    assert bench.mission_row()["status"] == "succeeded"
