"""Claims (F11, F29): atomic, one run per conversation, only runnable work."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from app.core.clock import now_iso
from app.runner.claims import Claim
from tests.support.worker import (
    Rows,
    make_settings,
    running_worker,
    script_profile,
    write_agent,
    write_profiles,
)


def journal_agent(tmp_path: Path, journal: Path) -> Path:
    """Appends the task title it was given to ``journal``: one line per run."""
    return write_agent(
        tmp_path,
        "journal",
        f"""
        import sys
        prompt = sys.stdin.read()
        title = next(l for l in prompt.splitlines() if l.startswith("Title: "))
        with open({str(journal)!r}, "a") as handle:
            handle.write(title[7:] + "\\n")
        emit("done")
        """,
    )


async def test_two_workers_in_one_loop_never_claim_one_conversation_twice(
    tmp_path: Path,
) -> None:
    """Two workers (two connections) interleave at every await: a claim that read its
    candidate outside the write transaction, or updated it without checking its
    state, would hand the same conversation to both."""
    journal = tmp_path / "journal"
    write_profiles(tmp_path, {"journal": script_profile(journal_agent(tmp_path, journal))})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="journal")
    conversations = [rows.task(agent, f"job-{i:02d}")[1] for i in range(12)]

    async def drain(worker_name: str) -> list[int]:
        done: list[int] = []
        async with running_worker(settings, name=worker_name) as worker:
            while (outcome := await worker.run_once()) is not None:
                done.append(outcome.conversation_id)
        return done

    first, second = await asyncio.gather(drain("a"), drain("b"))
    assert sorted(first + second) == sorted(c for c in conversations if c is not None)
    assert first and second  # both took part
    lines = Counter(journal.read_text().split())
    assert lines == Counter({f"job-{i:02d}": 1 for i in range(12)})
    owners = {r[0] for r in rows.all("SELECT DISTINCT lease_owner FROM conversations")}
    assert len(owners) == 2


async def test_simultaneous_claims_get_different_conversations(tmp_path: Path) -> None:
    """The sharp version: two workers claim at the very same moment, again and again
    (no agent run in between to spread them apart)."""
    write_profiles(tmp_path, {"journal": script_profile(journal_agent(tmp_path, tmp_path / "j"))})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="journal")
    conversations = {rows.task(agent, f"job-{i}")[1] for i in range(10)}
    claimed: list[int] = []
    async with running_worker(settings, name="a") as a, running_worker(settings, name="b") as b:
        for _ in range(5):
            pair = await asyncio.gather(a._claim(), b._claim())
            for claim in pair:
                assert isinstance(claim, Claim)
                claimed.append(claim.conversation_id)
        assert await a._claim() is None
    assert sorted(claimed) == sorted(conversations)  # ten claims, ten different rows
    owners = Counter(r[0] for r in rows.all("SELECT lease_owner FROM conversations"))
    assert owners == Counter({a.id: 5, b.id: 5})


async def test_only_runnable_conversations_are_claimed(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    write_profiles(tmp_path, {"journal": script_profile(journal_agent(tmp_path, journal))})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    active = rows.agent("active", profile="journal")
    paused = rows.agent("paused", profile="journal")
    deleted_agent = rows.agent("gone", profile="journal")
    # their agents are paused and deleted after the tasks were made (pre-flight
    # refuses a task for an agent that is not active)
    _, of_paused = rows.task(paused, "of-paused")
    _, of_deleted_agent = rows.task(deleted_agent, "of-deleted-agent")
    rows.execute("UPDATE agents SET status = 'paused' WHERE id = ?", (paused,))
    rows.execute("UPDATE agents SET deleted_at = ? WHERE id = ?", (now_iso(), deleted_agent))
    # a deleted, cancelled or blocked task keeps no queued run in the domain: these
    # rows test the claim's own filter
    _, of_deleted_task = rows.raw_task_row(active, "of-deleted-task", deleted=True)
    _, of_cancelled_task = rows.raw_task_row(active, "of-cancelled-task", status="cancelled")
    _, of_blocked_task = rows.raw_task_row(active, "of-blocked-task", status="blocked")
    _, runnable = rows.task(active, "runnable")

    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
        assert outcome is not None and outcome.conversation_id == runnable
        assert await worker.run_once() is None
    assert journal.read_text() == "runnable\n"
    for skipped in (
        of_paused,
        of_deleted_agent,
        of_deleted_task,
        of_cancelled_task,
        of_blocked_task,
    ):
        assert skipped is not None
        assert rows.conversation(skipped)["status"] == "QUEUED"


async def test_the_oldest_queued_conversation_is_claimed_first(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    write_profiles(tmp_path, {"journal": script_profile(journal_agent(tmp_path, journal))})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="journal")
    # blocked at once (no run), then unblocked in reverse task order: their runs are
    # queued in that order
    tasks = [rows.task(agent, f"t{i}", status="blocked")[0] for i in range(3)]
    for task in reversed(tasks):
        rows.queue(task)
    async with running_worker(settings) as worker:
        while await worker.run_once() is not None:
            pass
    assert journal.read_text().split() == ["t2", "t1", "t0"]


async def test_a_failed_task_blocks_its_waiting_dependents(tmp_path: Path) -> None:
    script = write_agent(tmp_path, "fail", 'emit("no", error=True)')
    write_profiles(tmp_path, {"fail": script_profile(script)})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="fail")
    root, _ = rows.task(agent, "root")
    child, _ = rows.task(agent, "child", depends_on=(root,))
    grandchild, _ = rows.task(agent, "grandchild", depends_on=(child,))
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
        assert outcome is not None and outcome.status == "FAILED"
        assert await worker.run_once() is None
    assert rows.task_status(root) == "failed"
    assert rows.task_status(child) == "blocked"
    assert rows.task_status(grandchild) == "blocked"
