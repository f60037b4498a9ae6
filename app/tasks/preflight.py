"""Pre-flight validation of every new task (F16): enforcing, never only logging.

Two halves:

* :func:`gather` reads every fact the checks need, inside the caller's write
  transaction (so the decision and the insert see one state of the database);
* the checks are small pure functions over the request and those facts, each
  with a stable code. :func:`run_checks` runs all of them and returns every
  failure, never just the first.

A check that cannot be evaluated because an earlier fact is missing (no such
agent, no such mission) is skipped; the missing fact is its own failure.
The list is documented in ``docs/preflight-checks.md``; keep both in step.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosqlite

from app.agents.service import capability_of
from app.agents.store import agent_row_tx
from app.capability.model import Capability
from app.core.clock import iso
from app.core.settings import Settings
from app.missions import store as mission_store
from app.security.credential_gate import contains_credential
from app.tasks import store
from app.tasks.schemas import Priority, TaskCreate

TITLE_MAX = 200
DESCRIPTION_MAX = 20_000
DUE_MAX_DAYS = 365
#: Nodes of the dependency graph walked to prove it acyclic; beyond it, refuse.
MAX_GRAPH_NODES = 2_000
MISSION_OPEN = frozenset({"approved", "running"})
DEPENDENCY_DEAD = frozenset({"failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed check. Messages never repeat the submitted text."""

    check: str
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class AgentFacts:
    status: str
    #: what the agent can do with its profile (app/capability/model.py)
    capability: Capability
    profile: str
    quota_tokens: int
    quota_cost_usd: float
    quota_runs: int
    tokens_today: int = 0
    cost_today: float = 0.0
    runs_today: int = 0
    circuit_open: bool = False


@dataclass(frozen=True)
class MissionFacts:
    status: str
    steps: list[dict[str, Any]]
    bound_cost_usd: float
    bound_tokens: int
    bound_steps: int
    spent_cost_usd: float
    spent_tokens: int
    tasks_created: int


@dataclass(frozen=True)
class Facts:
    now: datetime
    agent: AgentFacts | None = None
    mission: MissionFacts | None = None
    project_found: bool = True
    dependency_status: dict[int, str] = field(default_factory=dict)
    dependency_graph: dict[int, list[int]] = field(default_factory=dict)
    graph_complete: bool = True
    key_taken: bool = False
    #: the status of the reviewer agent named in ``review.agent_id`` (None: no such agent)
    reviewer_status: str | None = None


Check = Callable[[TaskCreate, Facts], list[Failure]]
CHECKS: dict[str, Check] = {}


def check(code: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[code] = fn
        return fn

    return register


# --- text checks, shared with task updates -----------------------------------


def title_failures(title: str) -> list[Failure]:
    if not title.strip():
        return [Failure("title_length", "title", "the title must not be empty")]
    if len(title.strip()) > TITLE_MAX:
        return [Failure("title_length", "title", f"the title is longer than {TITLE_MAX} chars")]
    return []


def description_failures(description: str) -> list[Failure]:
    if len(description) > DESCRIPTION_MAX:
        message = f"the description is longer than {DESCRIPTION_MAX} characters"
        return [Failure("description_length", "description", message)]
    return []


def priority_failures(priority: str) -> list[Failure]:
    if priority not in {p.value for p in Priority}:
        allowed = ", ".join(p.value for p in Priority)
        return [Failure("priority_valid", "priority", f"priority must be one of: {allowed}")]
    return []


def parse_due(text: str) -> datetime | None:
    """An ISO-8601 moment with a timezone, as UTC; None if it is not one."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def due_failures(due_at: str | None, now: datetime) -> list[Failure]:
    if due_at is None:
        return []
    moment = parse_due(due_at)
    if moment is None:
        message = "due_at must be an ISO-8601 date-time with a timezone, e.g. 2030-01-31T12:00Z"
        return [Failure("due_date_valid", "due_at", message)]
    if moment <= now:
        return [Failure("due_date_valid", "due_at", "due_at must be in the future")]
    if moment > now + timedelta(days=DUE_MAX_DAYS):
        message = f"due_at must be within {DUE_MAX_DAYS} days"
        return [Failure("due_date_valid", "due_at", message)]
    return []


def credential_failures(texts: dict[str, str]) -> list[Failure]:
    """The credential gate at task creation (F14): a secret is refused, not stored."""
    return [
        Failure(
            "no_credentials_in_text",
            name,
            f"the {name} contains what looks like a credential; remove it"
            " (agents must never see secrets)",
        )
        for name, text in texts.items()
        if text and contains_credential(text)
    ]


# --- the checks ----------------------------------------------------------------


@check("title_length")
def _title_length(spec: TaskCreate, _: Facts) -> list[Failure]:
    return title_failures(spec.title)


@check("description_length")
def _description_length(spec: TaskCreate, _: Facts) -> list[Failure]:
    return description_failures(spec.description)


@check("priority_valid")
def _priority_valid(spec: TaskCreate, _: Facts) -> list[Failure]:
    return priority_failures(spec.priority)


@check("due_date_valid")
def _due_date_valid(spec: TaskCreate, facts: Facts) -> list[Failure]:
    return due_failures(spec.due_at, facts.now)


@check("no_credentials_in_text")
def _no_credentials(spec: TaskCreate, _: Facts) -> list[Failure]:
    texts = {"title": spec.title, "description": spec.description}
    if spec.idempotency_key:
        texts["idempotency_key"] = spec.idempotency_key
    return credential_failures(texts)


@check("agent_exists")
def _agent_exists(spec: TaskCreate, facts: Facts) -> list[Failure]:
    if facts.agent is None:
        return [Failure("agent_exists", "agent_id", f"there is no agent {spec.agent_id}")]
    return []


@check("agent_active")
def _agent_active(_: TaskCreate, facts: Facts) -> list[Failure]:
    if facts.agent is not None and facts.agent.status != "active":
        message = f"the agent is {facts.agent.status}, not active"
        return [Failure("agent_active", "agent_id", message)]
    return []


@check("agent_tools_allowed")
def _agent_tools_allowed(spec: TaskCreate, facts: Facts) -> list[Failure]:
    if facts.agent is None:
        return []
    missing = sorted(t.value for t in spec.required_tools if t not in facts.agent.capability.tools)
    if missing:
        message = f"the agent is not allowed these tools: {', '.join(missing)}"
        return [Failure("agent_tools_allowed", "required_tools", message)]
    return []


@check("agent_shell_allowed")
def _agent_shell_allowed(spec: TaskCreate, facts: Facts) -> list[Failure]:
    if facts.agent is not None and spec.wants_shell and not facts.agent.capability.shell:
        message = (
            "the task needs a shell but the agent cannot run commands"
            f" ({facts.agent.capability.basis})"
        )
        return [Failure("agent_shell_allowed", "needs_shell", message)]
    return []


@check("agent_within_quota")
def _agent_within_quota(_: TaskCreate, facts: Facts) -> list[Failure]:
    agent = facts.agent
    if agent is None:
        return []
    spent: list[str] = []
    if agent.tokens_today >= agent.quota_tokens:
        spent.append(f"tokens {agent.tokens_today}/{agent.quota_tokens}")
    if agent.cost_today >= agent.quota_cost_usd:
        spent.append(f"cost {agent.cost_today:.2f}/{agent.quota_cost_usd:.2f} USD")
    if agent.runs_today >= agent.quota_runs:
        spent.append(f"runs {agent.runs_today}/{agent.quota_runs}")
    if spent:
        message = "the agent's daily quota is used up: " + "; ".join(spent)
        return [Failure("agent_within_quota", "agent_id", message)]
    return []


@check("runner_circuit_closed")
def _runner_circuit_closed(_: TaskCreate, facts: Facts) -> list[Failure]:
    if facts.agent is not None and facts.agent.circuit_open:
        message = f"the runner circuit of profile '{facts.agent.profile}' is open (failing runs)"
        return [Failure("runner_circuit_closed", "agent_id", message)]
    return []


@check("mission_exists")
def _mission_exists(spec: TaskCreate, facts: Facts) -> list[Failure]:
    if spec.mission_id is not None and facts.mission is None:
        return [Failure("mission_exists", "mission_id", f"there is no mission {spec.mission_id}")]
    return []


@check("mission_approved")
def _mission_approved(_: TaskCreate, facts: Facts) -> list[Failure]:
    if facts.mission is not None and facts.mission.status not in MISSION_OPEN:
        message = f"the mission is {facts.mission.status}; it must be approved or running"
        return [Failure("mission_approved", "mission_id", message)]
    return []


@check("mission_within_bounds")
def _mission_within_bounds(_: TaskCreate, facts: Facts) -> list[Failure]:
    mission = facts.mission
    if mission is None:
        return []
    hit: list[str] = []
    if mission.spent_cost_usd >= mission.bound_cost_usd:
        hit.append(f"cost {mission.spent_cost_usd:.2f}/{mission.bound_cost_usd:.2f} USD")
    if mission.spent_tokens >= mission.bound_tokens:
        hit.append(f"tokens {mission.spent_tokens}/{mission.bound_tokens}")
    if mission.tasks_created >= mission.bound_steps:
        hit.append(f"steps {mission.tasks_created}/{mission.bound_steps}")
    if hit:
        message = "the mission has reached its bounds: " + "; ".join(hit)
        return [Failure("mission_within_bounds", "mission_id", message)]
    return []


@check("mission_step_valid")
def _mission_step_valid(spec: TaskCreate, facts: Facts) -> list[Failure]:
    def fail(message: str) -> list[Failure]:
        return [Failure("mission_step_valid", "mission_step", message)]

    if spec.mission_id is None:
        return fail("mission_step needs a mission_id") if spec.mission_step is not None else []
    if spec.mission_step is None:
        return fail("a mission task must name its mission_step (1-based)")
    if facts.mission is None:
        return []
    steps = facts.mission.steps
    if spec.mission_step > len(steps):
        return fail(f"the mission has {len(steps)} steps; there is no step {spec.mission_step}")
    assigned = steps[spec.mission_step - 1].get("agent_id")
    if assigned != spec.agent_id:
        return fail(f"step {spec.mission_step} of the mission is assigned to agent {assigned}")
    return []


@check("project_exists")
def _project_exists(spec: TaskCreate, facts: Facts) -> list[Failure]:
    if spec.project_id is not None and not facts.project_found:
        return [Failure("project_exists", "project_id", f"there is no project {spec.project_id}")]
    return []


@check("dependencies_exist")
def _dependencies_exist(spec: TaskCreate, facts: Facts) -> list[Failure]:
    missing = [dep for dep in spec.depends_on if dep not in facts.dependency_status]
    if missing:
        message = "no such tasks: " + ", ".join(str(m) for m in missing)
        return [Failure("dependencies_exist", "depends_on", message)]
    return []


@check("dependencies_viable")
def _dependencies_viable(spec: TaskCreate, facts: Facts) -> list[Failure]:
    dead = [dep for dep in spec.depends_on if facts.dependency_status.get(dep) in DEPENDENCY_DEAD]
    if dead:
        message = "these dependencies failed or were cancelled and will never succeed: " + (
            ", ".join(str(d) for d in dead)
        )
        return [Failure("dependencies_viable", "depends_on", message)]
    return []


def find_cycle(graph: dict[int, list[int]], starts: list[int]) -> list[int] | None:
    """A cycle reachable from ``starts`` (as a path that returns to its first node)."""
    done: set[int] = set()
    for start in starts:
        if start in done:
            continue
        path: list[int] = [start]
        on_path: set[int] = {start}
        iterators = [iter(graph.get(start, ()))]
        while iterators:
            nxt = next(iterators[-1], None)
            if nxt is None:
                iterators.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                iterators.append(iter(graph.get(nxt, ())))
    return None


@check("dependencies_acyclic")
def _dependencies_acyclic(spec: TaskCreate, facts: Facts) -> list[Failure]:
    if not facts.graph_complete:
        message = f"the dependency graph is larger than {MAX_GRAPH_NODES} tasks; refusing"
        return [Failure("dependencies_acyclic", "depends_on", message)]
    cycle = find_cycle(facts.dependency_graph, list(spec.depends_on))
    if cycle:
        message = "the dependencies form a cycle: " + " -> ".join(str(n) for n in cycle)
        return [Failure("dependencies_acyclic", "depends_on", message)]
    return []


@check("idempotency_key_unique")
def _idempotency_key_unique(spec: TaskCreate, facts: Facts) -> list[Failure]:
    if spec.idempotency_key and facts.key_taken:
        message = "another task already uses this idempotency_key with different content"
        return [Failure("idempotency_key_unique", "idempotency_key", message)]
    return []


@check("review_valid")
def _review_valid(spec: TaskCreate, facts: Facts) -> list[Failure]:
    """The review gate's reviewer agent: another agent than the worker, live, active."""
    if spec.review is None or spec.review.agent_id is None:
        return []

    def fail(message: str) -> list[Failure]:
        return [Failure("review_valid", "review.agent_id", message)]

    if spec.review.agent_id == spec.agent_id:
        return fail(
            "the reviewer must be another agent than the one doing the task;"
            " pick another agent, or let a person review (review.human: true)"
        )
    if facts.reviewer_status is None:
        return fail(f"there is no agent {spec.review.agent_id} to review the task")
    if facts.reviewer_status != "active":
        return fail(f"the reviewer agent is {facts.reviewer_status}, not active")
    return []


def run_checks(spec: TaskCreate, facts: Facts) -> list[Failure]:
    """Every failed check, in the documented order."""
    failures: list[Failure] = []
    for fn in CHECKS.values():
        failures.extend(fn(spec, facts))
    return failures


# --- gathering the facts ---------------------------------------------------------


def circuit_open(states: list[str], profile: str) -> bool:
    """True if a live worker reports the profile's circuit ``open``.

    ``half_open`` lets a trial run through, so it does not refuse; a state that
    is not valid JSON is ignored (the worker writes it, not a client).
    """
    for text in states:
        try:
            state = json.loads(text)
            circuit = state["circuits"][profile]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(circuit, dict) and circuit.get("state") == "open":
            return True
    return False


async def _agent_facts(
    conn: aiosqlite.Connection, spec: TaskCreate, settings: Settings, now: datetime
) -> AgentFacts | None:
    row = await agent_row_tx(conn, spec.agent_id)
    if row is None:
        return None
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    tokens, cost = await store.usage_on_day(conn, spec.agent_id, now.date().isoformat())
    runs = await store.runs_since(conn, spec.agent_id, iso(midnight))
    fresh_since = iso(now - timedelta(minutes=settings.stale_run_minutes))
    states = await store.worker_states_since(conn, fresh_since)
    return AgentFacts(
        status=str(row["status"]),
        capability=capability_of(settings, row),
        profile=str(row["profile"]),
        quota_tokens=int(row["quota_tokens_per_day"]),
        quota_cost_usd=float(row["quota_cost_usd_per_day"]),
        quota_runs=int(row["quota_runs_per_day"]),
        tokens_today=tokens,
        cost_today=cost,
        runs_today=runs,
        circuit_open=circuit_open(states, str(row["profile"])),
    )


async def _mission_facts(conn: aiosqlite.Connection, mission_id: int) -> MissionFacts | None:
    row = await mission_store.mission_row_tx(conn, mission_id)
    if row is None:
        return None
    return MissionFacts(
        status=str(row["status"]),
        steps=list(json.loads(row["steps"])),
        bound_cost_usd=float(row["bound_cost_usd"]),
        bound_tokens=int(row["bound_tokens"]),
        bound_steps=int(row["bound_steps"]),
        spent_cost_usd=float(row["spent_cost_usd"]),
        spent_tokens=int(row["spent_tokens"]),
        tasks_created=int(row["tasks_created"]),
    )


async def _dependency_graph(
    conn: aiosqlite.Connection, starts: list[int]
) -> tuple[dict[int, list[int]], bool]:
    """Every dependency edge reachable from ``starts``; False if the walk was cut."""
    graph: dict[int, list[int]] = {}
    seen: set[int] = set(starts)
    frontier = list(starts)
    while frontier:
        edges = await store.dependency_edges(conn, frontier)
        frontier = []
        for task_id, dep in edges:
            graph.setdefault(task_id, []).append(dep)
            if dep not in seen:
                seen.add(dep)
                frontier.append(dep)
        if len(seen) > MAX_GRAPH_NODES:
            return graph, False
    return graph, True


async def gather(
    conn: aiosqlite.Connection, spec: TaskCreate, settings: Settings, now: datetime
) -> Facts:
    """Read every fact the checks need, inside the caller's transaction."""
    mission = await _mission_facts(conn, spec.mission_id) if spec.mission_id is not None else None
    project_found = (
        await store.project_exists(conn, spec.project_id) if spec.project_id is not None else True
    )
    deps = list(spec.depends_on)
    graph, complete = await _dependency_graph(conn, deps)
    key_taken = (
        await store.task_by_key_tx(conn, spec.idempotency_key) is not None
        if spec.idempotency_key
        else False
    )
    reviewer = None
    if spec.review is not None and spec.review.agent_id is not None:
        reviewer = await agent_row_tx(conn, spec.review.agent_id)
    return Facts(
        reviewer_status=None if reviewer is None else str(reviewer["status"]),
        now=now,
        agent=await _agent_facts(conn, spec, settings, now),
        mission=mission,
        project_found=project_found,
        dependency_status=await store.task_statuses(conn, deps),
        dependency_graph=graph,
        graph_complete=complete,
        key_taken=key_taken,
    )
