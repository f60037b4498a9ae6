"""The pre-flight checks as pure functions (F16): each one over hand-made facts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.capability.model import ProfileTraits, agent_capability
from app.tasks import preflight
from app.tasks.preflight import AgentFacts, Facts, MissionFacts
from app.tasks.schemas import TaskCreate

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
AGENT = AgentFacts(
    status="active",
    capability=agent_capability(
        ProfileTraits("demo", "claude-code", "per-agent"),
        shell_access=False,
        allowed_tools=["read_files"],
    ),
    profile="demo",
    quota_tokens=1000,
    quota_cost_usd=1.0,
    quota_runs=3,
)
MISSION = MissionFacts(
    status="approved",
    steps=[{"title": "s", "agent_id": 1, "instructions": ""}],
    bound_cost_usd=1.0,
    bound_tokens=100,
    bound_steps=2,
    spent_cost_usd=0.0,
    spent_tokens=0,
    tasks_created=0,
)


def spec(**fields: Any) -> TaskCreate:
    return TaskCreate(**{"title": "t", "agent_id": 1, **fields})


def facts(**fields: Any) -> Facts:
    return Facts(**{"now": NOW, "agent": AGENT, **fields})


def codes(task: TaskCreate, known: Facts) -> list[str]:
    return [f.check for f in preflight.run_checks(task, known)]


def test_a_good_task_passes_every_check() -> None:
    assert codes(spec(), facts()) == []
    mission_task = spec(mission_id=5, mission_step=1, depends_on=[2])
    assert codes(mission_task, facts(mission=MISSION, dependency_status={2: "queued"})) == []


@pytest.mark.parametrize(
    ("task", "known", "code"),
    [
        (spec(title=""), facts(), "title_length"),
        (spec(title=" \t "), facts(), "title_length"),
        (spec(title="x" * 201), facts(), "title_length"),
        (spec(description="x" * 20_001), facts(), "description_length"),
        (spec(priority="URGENT"), facts(), "priority_valid"),
        (spec(due_at="2030-06-01T11:59:59Z"), facts(), "due_date_valid"),
        (spec(due_at="2031-06-02T12:00:00Z"), facts(), "due_date_valid"),
        (spec(due_at="2030-07-01"), facts(), "due_date_valid"),
        (spec(due_at="next week"), facts(), "due_date_valid"),
        (spec(title="password=Sup3rS3cret!x"), facts(), "no_credentials_in_text"),
        (spec(idempotency_key="AKIAIOSFODNN7EXAMPLE"), facts(), "no_credentials_in_text"),
        (spec(), facts(agent=None), "agent_exists"),
        (spec(), facts(agent=replace(AGENT, status="retired")), "agent_active"),
        (spec(required_tools=["web_search"]), facts(), "agent_tools_allowed"),
        (spec(needs_shell=True), facts(), "agent_shell_allowed"),
        (spec(), facts(agent=replace(AGENT, runs_today=3)), "agent_within_quota"),
        (spec(), facts(agent=replace(AGENT, cost_today=1.0)), "agent_within_quota"),
        (spec(), facts(agent=replace(AGENT, circuit_open=True)), "runner_circuit_closed"),
        (spec(mission_id=5, mission_step=1), facts(), "mission_exists"),
        (
            spec(mission_id=5, mission_step=1),
            facts(mission=replace(MISSION, status="proposed")),
            "mission_approved",
        ),
        (
            spec(mission_id=5, mission_step=1),
            facts(mission=replace(MISSION, spent_tokens=100)),
            "mission_within_bounds",
        ),
        (
            spec(mission_id=5, mission_step=1),
            facts(mission=replace(MISSION, tasks_created=2)),
            "mission_within_bounds",
        ),
        (spec(mission_id=5, mission_step=2), facts(mission=MISSION), "mission_step_valid"),
        (
            spec(mission_id=5, mission_step=1, agent_id=9),
            facts(mission=MISSION, agent=AGENT),
            "mission_step_valid",
        ),
        (spec(project_id=3), facts(project_found=False), "project_exists"),
        (spec(depends_on=[7]), facts(), "dependencies_exist"),
        (spec(depends_on=[7]), facts(dependency_status={7: "failed"}), "dependencies_viable"),
        (
            spec(depends_on=[7]),
            facts(dependency_status={7: "queued"}, dependency_graph={7: [8], 8: [9], 9: [7]}),
            "dependencies_acyclic",
        ),
        (
            spec(depends_on=[7]),
            facts(dependency_status={7: "queued"}, graph_complete=False),
            "dependencies_acyclic",
        ),
        (spec(idempotency_key="k"), facts(key_taken=True), "idempotency_key_unique"),
    ],
)
def test_each_check_fails_on_its_own(task: TaskCreate, known: Facts, code: str) -> None:
    assert codes(task, known) == [code]


def test_checks_that_need_a_missing_fact_are_skipped() -> None:
    task = spec(required_tools=["web_search"], needs_shell=True, mission_id=4, mission_step=9)
    assert codes(task, facts(agent=None)) == ["agent_exists", "mission_exists"]


def test_find_cycle() -> None:
    assert preflight.find_cycle({1: [2], 2: [3]}, [1]) is None
    assert preflight.find_cycle({1: [2, 3], 2: [4], 3: [4], 4: []}, [1]) is None  # a diamond
    assert preflight.find_cycle({1: [2], 2: [3], 3: [2]}, [1]) == [2, 3, 2]
    assert preflight.find_cycle({5: [5]}, [5]) == [5, 5]
    long_chain = {i: [i + 1] for i in range(5000)}
    assert preflight.find_cycle(long_chain, [0]) is None  # iterative: no recursion limit


def test_circuit_state_parsing() -> None:
    assert preflight.circuit_open(['{"circuits": {"demo": {"state": "open"}}}'], "demo")
    assert not preflight.circuit_open(['{"circuits": {"demo": {"state": "half_open"}}}'], "demo")
    assert not preflight.circuit_open(['{"circuits": {"other": {"state": "open"}}}'], "demo")
    assert not preflight.circuit_open(["[]", "null", "{", '{"circuits": 3}'], "demo")
    assert not preflight.circuit_open([], "demo")


def test_due_parsing_keeps_the_moment() -> None:
    moment = preflight.parse_due("2030-06-01T14:00:00+02:00")
    assert moment == datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
    assert preflight.parse_due("2030-06-01T14:00:00") is None
    assert preflight.due_failures((NOW + timedelta(days=365)).isoformat(), NOW) == []


def test_messages_never_repeat_the_submitted_text() -> None:
    secret = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
    task = spec(title=secret, description=secret, priority=secret[:30], due_at=secret[:60])
    failures = preflight.run_checks(task, facts())
    assert failures
    assert all(secret[:20] not in f.message for f in failures)
