"""The review gate (app/tasks/review.py, docs/missions.md "Review gate"), with the
real worker, real SQLite and a scripted agent program: the work's run succeeding
does not make its task succeed; a reviewer agent's verdict does, or sends it back
with reasons, for at most ``max_cycles`` cycles, after which a person decides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import ApiError
from app.runner.worker import Worker
from app.tasks import review
from app.tasks import service as tasks_service
from app.tasks.review_verdict import Verdict
from app.tasks.schemas import ReviewSpec, TaskCreate, TaskStatus
from tests.runner.test_mission_steps import drive
from tests.support.api import caller
from tests.support.worker import (
    Rows,
    make_settings,
    running_worker,
    script_profile,
    write_agent,
    write_profiles,
)

#: One program for both roles. A review run (its prompt shows "The work to review")
#: answers the next scripted verdict from verdicts.json; a work run writes a file in
#: its workspace and reports its attempt. Every prompt is journalled.
AGENT = """
import json, os, sys
from pathlib import Path
here = Path(sys.argv[0]).parent.parent
prompt = sys.stdin.read()
journal = here / "prompts.jsonl"
with journal.open("a") as f:
    f.write(json.dumps(prompt) + "\\n")
if "# The work to review" in prompt:
    verdicts = json.loads((here / "verdicts.json").read_text())
    reply = verdicts.pop(0) if len(verdicts) > 1 else verdicts[0]
    (here / "verdicts.json").write_text(json.dumps(verdicts))
    emit(reply)
else:
    count = here / "attempts"
    n = int(count.read_text()) + 1 if count.exists() else 1
    count.write_text(str(n))
    Path("result.txt").write_text(f"attempt {n}\\nAKIA" + "ABCDEFGHIJKLMNOP" + "\\n")
    answer = (here / "answer.txt").read_text() if (here / "answer.txt").exists() else ""
    emit(f"work done, attempt {n}" + answer)
"""

CHANGES = "VERDICT: REQUEST_CHANGES\nThe file lacks a heading."
APPROVE = "VERDICT: APPROVE\nGood."


class Bench:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.settings = make_settings(tmp_path)
        self.rows = Rows(self.settings.database_path)
        script = write_agent(tmp_path, "scripted", AGENT)
        # the scripted agents run no commands; a generic profile would by default, and
        # an automatic review run with a shell waits for a person (app/tasks/approval.py)
        write_profiles(tmp_path, {"demo": {**script_profile(script), "commands": "per-agent"}})
        self.builder = self.rows.agent("builder")
        self.reviewer = self.rows.agent("reviewer")

    def verdicts(self, *replies: str) -> None:
        (self.tmp / "verdicts.json").write_text(json.dumps(list(replies)))

    def prompts(self) -> list[str]:
        path = self.tmp / "prompts.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    async def task(self, worker: Worker, *, review_spec: ReviewSpec | None, **fields: Any) -> int:
        spec = TaskCreate(
            title=fields.pop("title", "Write the file"),
            agent_id=fields.pop("agent_id", self.builder),
            review=review_spec,
            **fields,
        )
        view = await tasks_service.create_task(worker.ctx, spec, actor="user:alice", client="t")
        return view.id

    def verdict_rows(self, task_id: int) -> list[tuple[Any, ...]]:
        return [
            tuple(r)
            for r in self.rows.all(
                "SELECT cycle, reviewer_kind, reviewer, verdict FROM review_verdicts"
                " WHERE task_id = ? ORDER BY id",
                (task_id,),
            )
        ]

    def work_runs(self, task_id: int) -> int:
        return int(
            self.rows.value("SELECT count(*) FROM conversations WHERE task_id = ?", (task_id,))
        )


async def test_a_rejection_loop_stops_at_its_bound_and_asks_a_person(tmp_path: Path) -> None:
    bench = Bench(tmp_path)
    bench.verdicts(CHANGES)  # the reviewer never approves
    async with running_worker(bench.settings) as worker:
        task = await bench.task(
            worker, review_spec=ReviewSpec(agent_id=bench.reviewer, max_cycles=2)
        )
        await drive(worker, rounds=20)
        # two cycles with the agent, then nothing more runs: a person is asked
        assert bench.verdict_rows(task) == [
            (1, "agent", "agent reviewer", "request_changes"),
            (2, "agent", "agent reviewer", "request_changes"),
        ]
        assert bench.work_runs(task) == 2
        assert bench.rows.task_status(task) == "in_progress"
        assert (
            bench.rows.value(
                "SELECT count(*) FROM conversations WHERE status IN ('QUEUED', 'IN_PROGRESS')"
            )
            == 0
        )
        (waiting,) = bench.rows.escalations("review_waiting")
        assert waiting["status"] == "open" and waiting["subject_id"] == task
        assert "changes were requested in all 2 review cycle(s)" in waiting["reason"]
        # the second work run was told why, quoted as a reviewer's words (data)
        work_prompts = [p for p in bench.prompts() if "# The work to review" not in p]
        assert "Review feedback" not in work_prompts[0]
        assert (
            "review feedback, cycle 1 (agent reviewer) | written by agent reviewer"
            in work_prompts[1]
        )
        assert "> The file lacks a heading." in work_prompts[1]
        # the person approves from the task page (the same call the UI makes)
        await review.human_verdict(
            worker.ctx, task, Verdict.APPROVE, "fine as it is", caller("alice")
        )
    assert bench.rows.task_status(task) == "succeeded"
    assert bench.verdict_rows(task)[-1] == (2, "human", "user:alice", "approve")
    assert bench.rows.escalations("review_waiting")[0]["status"] == "resolved"
    events = [json.loads(e["payload"])["verdict"] for e in bench.rows.events("task.review_verdict")]
    assert events == ["request_changes", "request_changes", "approve"]
    audited = bench.rows.value(
        "SELECT count(*) FROM audit_log WHERE action = 'task.review_verdict'"
    )
    assert audited == 3


async def test_approval_completes_the_task_and_its_dependents_go_on(tmp_path: Path) -> None:
    bench = Bench(tmp_path)
    bench.verdicts(APPROVE)
    async with running_worker(bench.settings) as worker:
        task = await bench.task(worker, review_spec=ReviewSpec(agent_id=bench.reviewer))
        after = await bench.task(worker, review_spec=None, title="Use the file", depends_on=[task])
        await worker.run_once()  # the work
        # its run succeeded, the task did not: it waits for its review
        assert bench.rows.task_status(task) == "in_progress"
        assert bench.rows.task_status(after) == "queued"
        await drive(worker, rounds=10)
    assert bench.rows.task_status(task) == "succeeded"
    assert bench.rows.task_status(after) == "succeeded"
    assert bench.verdict_rows(task) == [(1, "agent", "agent reviewer", "approve")]
    review_prompt = next(p for p in bench.prompts() if "# The work to review" in p)
    # the result and the diff, as attributed, quoted data, the credential gated
    assert "final result of run" in review_prompt and "> work done, attempt 1" in review_prompt
    assert "diff of the workspace made by run" in review_prompt
    assert "> +attempt 1" in review_prompt
    assert "AKIAABCDEFGHIJKLMNOP" not in review_prompt
    assert "VERDICT: APPROVE" in review_prompt  # the instructions name the format
    review_task = bench.rows.value("SELECT id FROM tasks WHERE reviews_task_id = ?", (task,))
    assert bench.rows.task_status(review_task) == "succeeded"


@pytest.mark.parametrize(
    "reply",
    [
        "Looks good to me, I approve.",
        "VERDICT: APPROVE\nVERDICT: APPROVE",
        "verdict: approve",
        "VERDICT: APPROVE, mostly",
        "VERDICT: REQUEST_CHANGES",
        "",
    ],
)
async def test_an_unparseable_verdict_is_not_an_approval(tmp_path: Path, reply: str) -> None:
    bench = Bench(tmp_path)
    bench.verdicts(reply)
    async with running_worker(bench.settings) as worker:
        task = await bench.task(worker, review_spec=ReviewSpec(agent_id=bench.reviewer))
        await drive(worker, rounds=10)
    assert bench.rows.task_status(task) == "in_progress"
    assert bench.verdict_rows(task) == [(1, "agent", "agent reviewer", "unparseable")]
    assert bench.work_runs(task) == 1  # not sent back either: a person decides
    (waiting,) = bench.rows.escalations("review_waiting")
    assert "no usable verdict" in waiting["reason"]


async def test_the_same_agent_as_reviewer_is_refused(tmp_path: Path) -> None:
    bench = Bench(tmp_path)
    async with running_worker(bench.settings) as worker:
        with pytest.raises(ApiError) as refused:
            await bench.task(worker, review_spec=ReviewSpec(agent_id=bench.builder))
    assert refused.value.status == 422
    assert refused.value.details == [
        {
            "check": "review_valid",
            "field": "review.agent_id",
            "message": "the reviewer must be another agent than the one doing the task;"
            " pick another agent, or let a person review (review.human: true)",
        }
    ]
    assert bench.rows.value("SELECT count(*) FROM tasks") == 0


async def test_a_task_under_review_cannot_be_marked_succeeded_by_hand(tmp_path: Path) -> None:
    bench = Bench(tmp_path)
    async with running_worker(bench.settings) as worker:
        task = await bench.task(worker, review_spec=ReviewSpec(human=True))
        await worker.run_once()
        assert bench.rows.task_status(task) == "in_progress"
        with pytest.raises(ApiError) as refused:
            await tasks_service.change_task_status(
                worker.ctx, task, TaskStatus.SUCCEEDED, actor="rule:x", client="t"
            )
        assert refused.value.status == 409 and refused.value.code == "review_required"
        # a person asked for changes: the work runs again with the reasons
        with pytest.raises(ApiError) as empty:
            await review.human_verdict(
                worker.ctx, task, Verdict.REQUEST_CHANGES, " ", caller("bob")
            )
        assert empty.value.status == 422
        await review.human_verdict(
            worker.ctx, task, Verdict.REQUEST_CHANGES, "add a title", caller("bob")
        )
        await worker.run_once()
        assert "> add a title" in bench.prompts()[-1]
        assert bench.rows.task_status(task) == "in_progress"
        await review.human_verdict(worker.ctx, task, Verdict.APPROVE, "", caller("bob"))
        with pytest.raises(ApiError) as again:  # nothing waits any more
            await review.human_verdict(worker.ctx, task, Verdict.APPROVE, "", caller("bob"))
        assert again.value.status == 409
    assert bench.rows.task_status(task) == "succeeded"
    assert [v[3] for v in bench.verdict_rows(task)] == ["request_changes", "approve"]


async def test_a_mission_step_under_review_holds_the_mission_until_approved(
    tmp_path: Path,
) -> None:
    bench = Bench(tmp_path)
    bench.verdicts(CHANGES, APPROVE)
    steps = [
        {
            "title": "Build",
            "agent_id": bench.builder,
            "instructions": "build",
            "review": {"agent_id": bench.reviewer, "human": False, "max_cycles": 3},
        },
        {"title": "Ship", "agent_id": bench.builder, "instructions": "ship"},
    ]
    mission = bench.rows.mission(status="approved", steps=steps)
    async with running_worker(bench.settings) as worker:
        await drive(worker, rounds=20)
    tasks = bench.rows.all(
        "SELECT id, mission_step, status FROM tasks WHERE mission_id = ? ORDER BY id", (mission,)
    )
    assert [(t["mission_step"], t["status"]) for t in tasks] == [(1, "succeeded"), (2, "succeeded")]
    assert [v[3] for v in bench.verdict_rows(tasks[0]["id"])] == ["request_changes", "approve"]
    assert bench.rows.value("SELECT status FROM missions WHERE id = ?", (mission,)) == "succeeded"
    # review tasks are not the mission's: they count against no step
    assert bench.rows.value("SELECT count(*) FROM tasks WHERE reviews_task_id IS NOT NULL") == 2


async def test_waiting_for_you_opens_on_a_question_and_a_reply_closes_it(tmp_path: Path) -> None:
    from app.conversations.schemas import FollowUp
    from app.security.principal import Principal, Scope
    from app.tasks import follow_up as conversations
    from app.tasks.waiting import waiting_items

    bench = Bench(tmp_path)
    (tmp_path / "answer.txt").write_text("\nQUESTION: Which branch should I push to?")
    async with running_worker(bench.settings) as worker:
        task = await bench.task(worker, review_spec=None)
        await worker.run_once()
        assert bench.rows.task_status(task) == "succeeded"
        (asked,) = bench.rows.escalations("agent_question")
        run = bench.rows.value("SELECT id FROM conversations WHERE task_id = ?", (task,))
        assert asked["status"] == "open" and asked["subject_id"] == run
        assert asked["reason"].endswith(
            f"asks you (run {run} of 'Write the file'): Which branch should I push to?"
        )
        # on the dashboard's "Waiting for you" and a notification
        assert [r["id"] for r in await waiting_items(worker.ctx.db)] == [asked["id"]]
        assert (
            bench.rows.value("SELECT count(*) FROM notifications WHERE body LIKE '%Which branch%'")
            == 1
        )
        # the prompt told the agent how to ask
        assert "starts with QUESTION:" in bench.prompts()[0]
        person = Principal(kind="session", scope=Scope.ADMIN, name="alice", user_id=1)
        await conversations.follow_up(worker.ctx, run, FollowUp(text="main"), caller(person))
        assert bench.rows.escalations("agent_question")[0]["status"] == "resolved"
        assert await waiting_items(worker.ctx.db) == []


async def test_a_reply_without_a_question_opens_nothing(tmp_path: Path) -> None:
    bench = Bench(tmp_path)
    (tmp_path / "answer.txt").write_text("\nI have no QUESTION: all done.")
    async with running_worker(bench.settings) as worker:
        await bench.task(worker, review_spec=None)
        await worker.run_once()
    assert bench.rows.escalations("agent_question") == []


async def test_cancelling_the_work_during_review_cancels_its_review(tmp_path: Path) -> None:
    bench = Bench(tmp_path)
    bench.verdicts(APPROVE)
    async with running_worker(bench.settings) as worker:
        task = await bench.task(worker, review_spec=ReviewSpec(agent_id=bench.reviewer))
        await worker.run_once()  # the work; its review task is queued
        review_task = bench.rows.value("SELECT id FROM tasks WHERE reviews_task_id = ?", (task,))
        assert bench.rows.task_status(review_task) == "queued"
        await tasks_service.cancel_task(worker.ctx, task, caller("alice"))
        assert await worker.run_once() is None  # nothing left to run
    assert bench.rows.task_status(task) == "cancelled"
    assert bench.rows.task_status(review_task) == "cancelled"
    assert bench.rows.value("SELECT state FROM task_reviews WHERE task_id = ?", (task,)) == "closed"
    assert bench.verdict_rows(task) == []


async def test_retention_empties_old_review_diffs_and_keeps_the_verdicts(tmp_path: Path) -> None:
    from app.retention.job import run_retention

    bench = Bench(tmp_path)
    bench.verdicts(APPROVE)
    async with running_worker(bench.settings) as worker:
        task = await bench.task(worker, review_spec=ReviewSpec(agent_id=bench.reviewer))
        await drive(worker, rounds=5)
        assert bench.rows.value("SELECT diff FROM task_reviews WHERE task_id = ?", (task,))
        assert (await run_retention(worker.ctx, pause_s=0))["review_diffs"] == 0  # recent
        bench.rows.execute("UPDATE task_reviews SET updated_at = '2020-01-01T00:00:00Z'")
        assert (await run_retention(worker.ctx, pause_s=0))["review_diffs"] == 1
    assert bench.rows.value("SELECT diff FROM task_reviews WHERE task_id = ?", (task,)) == ""
    assert bench.verdict_rows(task) == [(1, "agent", "agent reviewer", "approve")]
