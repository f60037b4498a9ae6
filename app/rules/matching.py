"""Evaluating a rule's conditions against one event: pure functions, no I/O.

A condition on a field the event does not carry never matches (``ne`` and
``not_in`` included): a rule fires only on what it can see. Types are compared
strictly: ``1`` is not ``true`` and ``"1"`` is not ``1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.rules.schemas import Condition, Op

_MISSING = object()


@dataclass(frozen=True)
class EventFacts:
    """The parts of an event a condition may read."""

    type: str
    subject_id: int | None
    actor: str
    rule_depth: int
    payload: dict[str, Any]

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> EventFacts:
        payload = event.get("payload")
        return cls(
            type=str(event["type"]),
            subject_id=event.get("subject_id"),
            actor=str(event.get("actor") or ""),
            rule_depth=int(event.get("rule_depth") or 0),
            payload=payload if isinstance(payload, dict) else {},
        )

    def field(self, name: str) -> Any:
        if name == "subject_id":
            return _MISSING if self.subject_id is None else self.subject_id
        if name == "actor":
            return self.actor
        if name.startswith("payload."):
            return self.payload.get(name.removeprefix("payload."), _MISSING)
        return _MISSING


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    return "other"


def _same(actual: Any, expected: Any) -> bool:
    kind = _kind(actual)
    return kind != "other" and kind == _kind(expected) and bool(actual == expected)


def condition_matches(condition: Condition, actual: Any) -> bool:
    if actual is _MISSING or actual is None:
        return False
    value = condition.value
    match condition.op:
        case Op.EQ:
            return _same(actual, value)
        case Op.NE:
            return _kind(actual) != "other" and not _same(actual, value)
        case Op.IN:
            return isinstance(value, list) and any(_same(actual, v) for v in value)
        case Op.NOT_IN:
            return (
                isinstance(value, list)
                and _kind(actual) != "other"
                and not any(_same(actual, v) for v in value)
            )
        case Op.GT:
            return _kind(actual) == "number" == _kind(value) and bool(actual > value)
        case Op.LT:
            return _kind(actual) == "number" == _kind(value) and bool(actual < value)
        case Op.CONTAINS:
            return isinstance(actual, str) and isinstance(value, str) and value in actual
    return False


def evaluate(conditions: list[Condition], facts: EventFacts) -> list[tuple[Any, bool]]:
    """For each condition: the value seen (None when absent) and whether it matched."""
    results: list[tuple[Any, bool]] = []
    for condition in conditions:
        actual = facts.field(condition.field)
        shown = None if actual is _MISSING else actual
        results.append((shown, condition_matches(condition, actual)))
    return results


def all_match(conditions: list[Condition], facts: EventFacts) -> bool:
    return all(matched for _, matched in evaluate(conditions, facts))
