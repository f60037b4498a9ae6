"""Trigger rules are data, never code (F8).

A rule is ``on`` one event type from a fixed allow-list, ``when`` a short list
of conditions on allow-listed fields of that event with a fixed set of
operators, ``then`` a short list of actions from a fixed allow-list. Every body
forbids unknown keys, every string is bounded, and nothing in a rule is ever
evaluated, formatted with ``str.format`` or handed to a shell: the only
substitution is the literal text ``{subject_id}`` and ``{type}``.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    model_validator,
)

from app.approvals.schemas import WithStepUp
from app.events.types import Category, EventType, Severity
from app.security.credential_gate import contains_credential

MAX_CONDITIONS = 10
MAX_ACTIONS = 5
MAX_LIST_VALUES = 20
MAX_VALUE_CHARS = 200
MAX_FIRINGS_PER_HOUR_CEILING = 100


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- the allow-lists -------------------------------------------------------------

COMMON_FIELDS: frozenset[str] = frozenset({"subject_id", "actor"})

_TASK_FIELDS = frozenset(
    {
        "payload.title",
        "payload.agent_id",
        "payload.priority",
        "payload.mission_id",
        "payload.mission_step",
        "payload.project_id",
        "payload.from",
        "payload.to",
    }
)
_AGENT_FIELDS = frozenset(
    {"payload.name", "payload.status", "payload.previous", "payload.identity_version"}
)
_MISSION_FIELDS = frozenset({"payload.title", "payload.from", "payload.to", "payload.steps"})
_CONVERSATION_FIELDS = frozenset(
    {"payload.task_id", "payload.agent_id", "payload.status", "payload.reason"}
)
_ESCALATION_FIELDS = frozenset(
    {"payload.kind", "payload.subject_type", "payload.subject_id", "payload.reason", "payload.by"}
)
_PROJECT_FIELDS = frozenset({"payload.name", "payload.document_id"})
_RUNNER_FIELDS = frozenset({"payload.profile", "payload.agent_id"})

# The events a rule may listen to, and the fields its conditions may read.
# Deliberately absent: ``rule.*`` (a rule reacting to rules is a loop),
# ``notification.created`` and ``security.alert`` (a rule reacting to the
# alarms it raises is a loop, and alarms must not be a trigger surface).
TRIGGER_FIELDS: dict[EventType, frozenset[str]] = {
    EventType.AGENT_CREATED: _AGENT_FIELDS,
    EventType.AGENT_UPDATED: _AGENT_FIELDS,
    EventType.AGENT_STATUS_CHANGED: _AGENT_FIELDS,
    EventType.AGENT_IDENTITY_CHANGED: _AGENT_FIELDS,
    EventType.AGENT_DELETED: _AGENT_FIELDS,
    EventType.MEMORY_ADDED: frozenset({"payload.memory_id"}),
    EventType.PROJECT_CREATED: _PROJECT_FIELDS,
    EventType.PROJECT_UPDATED: _PROJECT_FIELDS,
    EventType.PROJECT_DELETED: _PROJECT_FIELDS,
    EventType.MISSION_PROPOSED: _MISSION_FIELDS,
    EventType.MISSION_APPROVED: _MISSION_FIELDS,
    EventType.MISSION_REJECTED: _MISSION_FIELDS,
    EventType.MISSION_STARTED: _MISSION_FIELDS,
    EventType.MISSION_SUCCEEDED: _MISSION_FIELDS,
    EventType.MISSION_FAILED: _MISSION_FIELDS,
    EventType.MISSION_CANCELLED: _MISSION_FIELDS,
    EventType.TASK_CREATED: _TASK_FIELDS,
    EventType.TASK_UPDATED: _TASK_FIELDS,
    EventType.TASK_STATUS_CHANGED: _TASK_FIELDS,
    EventType.TASK_REFUSED: _TASK_FIELDS,
    EventType.CONVERSATION_QUEUED: _CONVERSATION_FIELDS,
    EventType.CONVERSATION_STARTED: _CONVERSATION_FIELDS,
    EventType.CONVERSATION_SUCCEEDED: _CONVERSATION_FIELDS,
    EventType.CONVERSATION_FAILED: _CONVERSATION_FIELDS,
    EventType.CONVERSATION_CANCELLED: _CONVERSATION_FIELDS,
    EventType.POLICY_CHANGED: frozenset({"payload.name", "payload.version", "payload.changed"}),
    EventType.ESCALATION_OPENED: _ESCALATION_FIELDS,
    EventType.ESCALATION_ACKNOWLEDGED: _ESCALATION_FIELDS,
    EventType.ESCALATION_RESOLVED: _ESCALATION_FIELDS,
    EventType.RUNNER_CIRCUIT_OPENED: _RUNNER_FIELDS,
    EventType.RUNNER_CIRCUIT_CLOSED: _RUNNER_FIELDS,
}

# Events whose subject is a task: the only ones ``set_task_status`` may follow
# (``task.refused`` has no task: nothing was created).
TASK_EVENTS: frozenset[EventType] = frozenset(
    {EventType.TASK_CREATED, EventType.TASK_UPDATED, EventType.TASK_STATUS_CHANGED}
)


class TriggerEvent(StrEnum):
    """``EventType`` restricted to the allow-list (so the schema says so, too)."""

    AGENT_CREATED = EventType.AGENT_CREATED.value
    AGENT_UPDATED = EventType.AGENT_UPDATED.value
    AGENT_STATUS_CHANGED = EventType.AGENT_STATUS_CHANGED.value
    AGENT_IDENTITY_CHANGED = EventType.AGENT_IDENTITY_CHANGED.value
    AGENT_DELETED = EventType.AGENT_DELETED.value
    MEMORY_ADDED = EventType.MEMORY_ADDED.value
    PROJECT_CREATED = EventType.PROJECT_CREATED.value
    PROJECT_UPDATED = EventType.PROJECT_UPDATED.value
    PROJECT_DELETED = EventType.PROJECT_DELETED.value
    MISSION_PROPOSED = EventType.MISSION_PROPOSED.value
    MISSION_APPROVED = EventType.MISSION_APPROVED.value
    MISSION_REJECTED = EventType.MISSION_REJECTED.value
    MISSION_STARTED = EventType.MISSION_STARTED.value
    MISSION_SUCCEEDED = EventType.MISSION_SUCCEEDED.value
    MISSION_FAILED = EventType.MISSION_FAILED.value
    MISSION_CANCELLED = EventType.MISSION_CANCELLED.value
    TASK_CREATED = EventType.TASK_CREATED.value
    TASK_UPDATED = EventType.TASK_UPDATED.value
    TASK_STATUS_CHANGED = EventType.TASK_STATUS_CHANGED.value
    TASK_REFUSED = EventType.TASK_REFUSED.value
    CONVERSATION_QUEUED = EventType.CONVERSATION_QUEUED.value
    CONVERSATION_STARTED = EventType.CONVERSATION_STARTED.value
    CONVERSATION_SUCCEEDED = EventType.CONVERSATION_SUCCEEDED.value
    CONVERSATION_FAILED = EventType.CONVERSATION_FAILED.value
    CONVERSATION_CANCELLED = EventType.CONVERSATION_CANCELLED.value
    POLICY_CHANGED = EventType.POLICY_CHANGED.value
    ESCALATION_OPENED = EventType.ESCALATION_OPENED.value
    ESCALATION_ACKNOWLEDGED = EventType.ESCALATION_ACKNOWLEDGED.value
    ESCALATION_RESOLVED = EventType.ESCALATION_RESOLVED.value
    RUNNER_CIRCUIT_OPENED = EventType.RUNNER_CIRCUIT_OPENED.value
    RUNNER_CIRCUIT_CLOSED = EventType.RUNNER_CIRCUIT_CLOSED.value

    @property
    def event_type(self) -> EventType:
        return EventType(self.value)


def allowed_fields(event: TriggerEvent | EventType) -> frozenset[str]:
    return COMMON_FIELDS | TRIGGER_FIELDS[EventType(event.value)]


# --- safe text -------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
# Nothing in a rule is run by a shell; shell syntax is refused anyway so that a
# rule cannot carry a payload meant for a shell-capable agent (defense in depth).
_SHELLISH = re.compile(
    r"`|\$\(|\$\{|[<>]\(|\|\s*(?:ba|z|da|k|c|tc|fi)?sh\b|\b(?:curl|wget|nc|ncat)\s+\S"
    r"|\b(?:rm\s+-[a-z]*[rf]|chmod\s+[0-7+]|sudo\s|bash\s+-c|sh\s+-c|eval\s|exec\s)",
    re.IGNORECASE,
)
PLACEHOLDERS: tuple[str, ...] = ("{subject_id}", "{type}")
_PLACEHOLDER = re.compile(r"\{(subject_id|type)\}")


def _check_safe(value: str, *, multiline: bool) -> str:
    if _CONTROL.search(value) or (not multiline and ("\n" in value or "\t" in value)):
        raise ValueError("control characters are not allowed")
    if _SHELLISH.search(value):
        raise ValueError("shell syntax is not allowed in a rule")
    if contains_credential(value):
        raise ValueError("a credential is not allowed in a rule")
    return value


def _safe_line(value: str) -> str:
    _check_safe(value, multiline=False)
    if "{" in value or "}" in value:
        raise ValueError("braces are not allowed here")
    return value


def _template(multiline: bool) -> Any:
    def check(value: str) -> str:
        _check_safe(value, multiline=multiline)
        rest = _PLACEHOLDER.sub("", value)
        if "{" in rest or "}" in rest:
            raise ValueError("the only placeholders are {subject_id} and {type}")
        return value

    return check


SafeLine = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_VALUE_CHARS),
    AfterValidator(_safe_line),
]
TitleTemplate = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_template(multiline=False)),
]
BodyTemplate = Annotated[
    str, StringConstraints(max_length=2000), AfterValidator(_template(multiline=True))
]
ReasonTemplate = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    AfterValidator(_template(multiline=True)),
]
RuleName = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,79}$")
]
FieldName = Annotated[
    str, StringConstraints(pattern=r"^(?:subject_id|actor|payload\.[a-z_]{1,40})$")
]
EscalationKind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


def render(template: str, event_type: str, subject_id: int | None) -> str:
    """Replace ``{subject_id}`` and ``{type}``: a literal substitution, nothing else."""
    values = {"subject_id": "" if subject_id is None else str(subject_id), "type": event_type}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


# --- conditions --------------------------------------------------------------------


class Op(StrEnum):
    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    GT = "gt"
    LT = "lt"
    CONTAINS = "contains"


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("numbers must be finite")
    return value


Number = StrictInt | Annotated[StrictFloat, AfterValidator(_finite)]
Scalar = StrictBool | Number | SafeLine


class Condition(Strict):
    field: FieldName
    op: Op
    value: Scalar | Annotated[list[Scalar], Field(min_length=1, max_length=MAX_LIST_VALUES)]

    @model_validator(mode="after")
    def _operator_fits_value(self) -> Condition:
        is_list = isinstance(self.value, list)
        if self.op in (Op.IN, Op.NOT_IN):
            if not is_list:
                raise ValueError(f"'{self.op.value}' needs a list value")
            return self
        if is_list:
            raise ValueError(f"'{self.op.value}' needs a single value")
        if self.op in (Op.GT, Op.LT) and (
            isinstance(self.value, bool) or not isinstance(self.value, int | float)
        ):
            raise ValueError(f"'{self.op.value}' needs a number")
        if self.op == Op.CONTAINS and not isinstance(self.value, str):
            raise ValueError("'contains' needs a string")
        return self


# --- actions -------------------------------------------------------------------------


class TaskPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class RuleTaskStatus(StrEnum):
    """The only statuses a rule may set: it can stop or re-queue, never finish work."""

    CANCELLED = "cancelled"
    BLOCKED = "blocked"
    QUEUED = "queued"


class NotifyAction(Strict):
    type: Literal["notify"]
    category: Category
    severity: Severity = Severity.INFO
    title: TitleTemplate
    body: BodyTemplate = ""


class CreateTaskAction(Strict):
    type: Literal["create_task"]
    agent_id: Annotated[int, Field(ge=1, le=2**53)]
    title: TitleTemplate
    description: BodyTemplate = ""
    priority: TaskPriority = TaskPriority.NORMAL


class SetTaskStatusAction(Strict):
    """Set the status of the task the event is about."""

    type: Literal["set_task_status"]
    status: RuleTaskStatus


class OpenEscalationAction(Strict):
    type: Literal["open_escalation"]
    kind: EscalationKind
    reason: ReasonTemplate


Action = Annotated[
    NotifyAction | CreateTaskAction | SetTaskStatusAction | OpenEscalationAction,
    Field(discriminator="type"),
]
ACTION_TYPES: tuple[str, ...] = ("notify", "create_task", "set_task_status", "open_escalation")


# --- rules -----------------------------------------------------------------------------


class RuleSpec(Strict):
    """What a rule does; validated whole on every create and every change."""

    name: RuleName
    on: TriggerEvent
    when: Annotated[list[Condition], Field(max_length=MAX_CONDITIONS)] = []
    then: Annotated[list[Action], Field(min_length=1, max_length=MAX_ACTIONS)]
    max_firings_per_hour: Annotated[int, Field(ge=1, le=MAX_FIRINGS_PER_HOUR_CEILING)] = 10

    @model_validator(mode="after")
    def _fits_the_event(self) -> RuleSpec:
        fields = allowed_fields(self.on)
        for condition in self.when:
            if condition.field not in fields:
                raise ValueError(
                    f"field '{condition.field}' is not allowed for '{self.on.value}';"
                    f" allowed: {', '.join(sorted(fields))}"
                )
        if self.on.event_type not in TASK_EVENTS and any(
            isinstance(a, SetTaskStatusAction) for a in self.then
        ):
            raise ValueError("set_task_status is only allowed on task events")
        return self

    def agent_ids(self) -> list[int]:
        return sorted({a.agent_id for a in self.then if isinstance(a, CreateTaskAction)})

    def behaviour(self) -> dict[str, Any]:
        """Everything that decides what the rule does (not its name or its rate)."""
        dumped = self.model_dump(mode="json", include={"on", "when", "then"})
        return dumped


class RuleCreate(RuleSpec):
    enabled: bool = True


class RuleUpdate(Strict):
    """A change: only the fields given change; the result is validated whole again."""

    version: int
    name: RuleName | None = None
    on: TriggerEvent | None = None
    when: Annotated[list[Condition], Field(max_length=MAX_CONDITIONS)] | None = None
    then: Annotated[list[Action], Field(min_length=1, max_length=MAX_ACTIONS)] | None = None
    max_firings_per_hour: Annotated[int, Field(ge=1, le=MAX_FIRINGS_PER_HOUR_CEILING)] | None = None
    enabled: bool | None = None


class RuleVersion(Strict):
    """Body of approve: the version the approver has read and approves."""

    version: int


class Approval(StrEnum):
    NOT_NEEDED = "not_needed"
    PENDING = "pending"
    APPROVED = "approved"


class RuleView(BaseModel):
    id: int
    name: str
    on: str
    when: list[dict[str, Any]]
    then: list[dict[str, Any]]
    enabled: bool
    approval: Approval
    approved_by: str | None
    approved_at: str | None
    max_firings_per_hour: int
    created_by: str
    version: int
    created_at: str
    updated_at: str


class FiringView(BaseModel):
    id: int
    rule_id: int
    event_id: int
    depth: int
    outcome: str
    fired_at: str


# --- dry run ---------------------------------------------------------------------------


def _plain_json(value: dict[str, Any]) -> dict[str, Any]:
    """A small JSON object: finite numbers, short strings, shallow nesting."""
    budget = [500]

    def walk(item: Any, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0 or depth > 5:
            raise ValueError("the payload is too large or too deeply nested")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite")
        if isinstance(item, str) and len(item) > 2000:
            raise ValueError("strings are limited to 2000 characters")
        if isinstance(item, dict):
            for child in item.values():
                walk(child, depth + 1)
        elif isinstance(item, list):
            for child in item:
                walk(child, depth + 1)

    walk(value, 0)
    return value


class DryRunEvent(Strict):
    type: EventType
    subject_id: Annotated[int, Field(ge=0, le=2**53)] | None = None
    actor: Annotated[str, StringConstraints(max_length=128)] = "dry-run"
    rule_depth: Annotated[int, Field(ge=0, le=100)] = 0
    payload: Annotated[dict[str, Any], Field(max_length=50), AfterValidator(_plain_json)] = {}


class DryRunRequest(Strict):
    event: DryRunEvent


class ConditionResult(BaseModel):
    field: str
    op: str
    value: Any
    actual: Any
    matched: bool


class ActionPreview(BaseModel):
    type: str
    would: str
    details: dict[str, Any]


class DryRunResult(BaseModel):
    rule_id: int
    event_type_matches: bool
    conditions: list[ConditionResult]
    matched: bool
    would_fire: bool
    blocked_reason: str | None
    depth: int
    actions: list[ActionPreview]


class RuleApproval(RuleVersion, WithStepUp):
    """Body of a rule's approve: the version read, and a step-up when it is your own."""
