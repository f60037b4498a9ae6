"""One meaning of a task's end, whichever path ends it (docs/architecture.md, "Who
owns a state"): a task ended by the worker (its run succeeded) and a task ended
through the task service (the API's status change, ``transitions.move``) record
the same thing: ``dependents_queued`` lists the *task* ids of the dependents that
got a run, and the ``conversation.queued`` / ``task.status_changed`` events have
one shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.tasks import service as tasks_service
from app.tasks.schemas import TaskStatus
from tests.support.worker import (
    Rows,
    make_settings,
    running_worker,
    script_profile,
    write_agent,
    write_profiles,
)


def _audit(rows: Rows, action: str, target: str) -> dict[str, Any]:
    summary = rows.value(
        "SELECT summary FROM audit_log WHERE action = ? AND target = ? ORDER BY id DESC LIMIT 1",
        (action, target),
    )
    assert summary is not None, f"no {action} audit record for {target}"
    parsed: dict[str, Any] = json.loads(summary)
    return parsed


def _events(rows: Rows, event_type: str, key: str, value: int) -> list[dict[str, Any]]:
    found = [json.loads(row["payload"]) for row in rows.events(event_type)]
    return [payload for payload in found if payload.get(key) == value]


async def test_dependents_queued_are_task_ids_whichever_path_ends_the_task(
    tmp_path: Path,
) -> None:
    script = write_agent(tmp_path, "ok", 'emit("done")')
    write_profiles(tmp_path, {"ok": script_profile(script)})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="ok")
    # tasks without a run first (they wait for a blocked one), so task ids and
    # conversation ids cannot coincide
    on_hold, _ = rows.task(agent, "on hold", status="blocked")
    for i in range(5):
        rows.task(agent, f"earlier {i}", depends_on=(on_hold,))
    by_worker, run = rows.task(agent, "ended by the worker")
    after_worker, _ = rows.task(agent, "waits for the worker", depends_on=(by_worker,))
    # its run claimed by another worker: the person ends it meanwhile
    by_api, _ = rows.task(agent, "ended by a person", status="in_progress")
    after_api, _ = rows.task(agent, "waits for the person", depends_on=(by_api,))

    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
        assert outcome is not None and outcome.conversation_id == run
        assert outcome.status == "SUCCEEDED"
        await tasks_service.change_task_status(
            worker.ctx, by_api, TaskStatus.SUCCEEDED, actor="user:alice", client="t"
        )

    queued_worker = _events(rows, "conversation.queued", "task_id", after_worker)
    queued_api = _events(rows, "conversation.queued", "task_id", after_api)
    assert len(queued_worker) == len(queued_api) == 1
    new_runs = {
        int(rows.value("SELECT id FROM conversations WHERE task_id = ?", (task,)))
        for task in (after_worker, after_api)
    }
    assert not new_runs & {after_worker, after_api}, "ids coincide: the test could not tell"

    by_worker_audit = _audit(rows, "conversation.finished", f"conversation:{run}")
    by_api_audit = _audit(rows, "task.status", f"task:{by_api}")
    assert by_worker_audit["dependents_queued"] == [after_worker]
    assert by_api_audit["dependents_queued"] == [after_api]

    # one event shape on both paths
    assert queued_worker[0] == {"task_id": after_worker, "agent_id": agent, "after_task": by_worker}
    assert queued_api[0] == {"task_id": after_api, "agent_id": agent, "after_task": by_api}
    ended = {
        int(row["subject_id"]): json.loads(row["payload"])
        for row in rows.events("task.status_changed")
        if json.loads(row["payload"])["to"] == "succeeded"
    }
    assert ended == {
        by_worker: {"from": "in_progress", "to": "succeeded"},
        by_api: {"from": "in_progress", "to": "succeeded"},
    }


async def test_a_dependent_waiting_for_a_person_gets_no_run_when_the_worker_ends_its_dependency(
    tmp_path: Path,
) -> None:
    """The worker's end of a task queues dependents through the one gate every run
    passes (``transitions.queue_if_ready``): a dependent held for a person's
    approval (its run would get a shell) stays without a run."""
    script = write_agent(tmp_path, "ok", 'emit("done")')
    write_profiles(tmp_path, {"ok": script_profile(script)})
    settings = make_settings(tmp_path)
    rows = Rows(settings.database_path)
    agent = rows.agent(profile="ok")
    root, run = rows.task(agent, "prepare")
    held, _ = rows.task(
        agent, "run a shell", depends_on=(root,), needs_shell=True, approval="pending"
    )
    async with running_worker(settings) as worker:
        outcome = await worker.run_once()
        assert outcome is not None and outcome.status == "SUCCEEDED"
        assert await worker.run_once() is None
    assert rows.task_status(root) == "succeeded"
    assert rows.value("SELECT count(*) FROM conversations WHERE task_id = ?", (held,)) == 0
    assert rows.task_status(held) == "queued"
    assert _audit(rows, "conversation.finished", f"conversation:{run}")["dependents_queued"] == []
