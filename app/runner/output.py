"""Parse an agent's ``claude-json`` output into a typed :class:`AgentReply`.

The Claude CLI with ``-p --output-format json`` prints one JSON object::

    {"type": "result", "subtype": "success", "is_error": false, "result": "...",
     "session_id": "...", "num_turns": 1, "duration_ms": 1234, "total_cost_usd": 0.01,
     "usage": {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 0, ...}}

(with ``--verbose`` it prints a JSON array of messages ending with that object).
Whatever the agent prints, parsing never raises: garbage, truncated or hostile
output becomes a reply with ``is_error=True`` and a reason. Usage and cost are
kept even on error replies, since a failed run may still have cost money (F15).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

from app.runner.process import RunResult

MAX_TOKENS = 10**10
MAX_COST_USD = 100_000.0
#: lines tried (from the end) when the whole output is not one JSON document
_MAX_LINES_TRIED = 20
_MAX_REASON_CHARS = 300


@dataclass(frozen=True, slots=True)
class AgentReply:
    text: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    is_error: bool
    raw_truncated: bool
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    num_turns: int | None = None
    session_id: str | None = None
    subtype: str | None = None
    #: why the reply is an error (None when it is not)
    error_reason: str | None = None

    @property
    def total_input_tokens(self) -> int:
        """Input tokens including cache writes and reads (all of them are billed)."""
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    @property
    def total_tokens(self) -> int:
        return self.total_input_tokens + self.output_tokens


class _Invalid(Exception):
    pass


def _error(reason: str, *, truncated: bool, text: str = "") -> AgentReply:
    return AgentReply(
        text=text or f"[agent error] {reason}",
        input_tokens=0,
        output_tokens=0,
        cost_usd=0.0,
        is_error=True,
        raw_truncated=truncated,
        error_reason=reason,
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def _find_result(document: Any) -> dict[str, Any] | None:
    if isinstance(document, dict):
        return document
    if isinstance(document, list):
        for item in reversed(document):
            if isinstance(item, dict) and item.get("type") == "result":
                return item
    return None


def _locate(text: str) -> dict[str, Any] | None:
    """The result object: the whole output, else one of the last lines (the CLI may
    print warnings before it)."""
    try:
        found = _find_result(_loads(text))
    except (ValueError, RecursionError):
        found = None
    if found is not None:
        return found
    tried = 0
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not line.startswith(("{", "[")):
            continue
        tried += 1
        if tried > _MAX_LINES_TRIED:
            break
        try:
            found = _find_result(_loads(line))
        except (ValueError, RecursionError):
            continue
        if found is not None:
            return found
    return None


def _count(container: dict[str, Any], key: str, *, where: str) -> int:
    value = container.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        raise _Invalid(f"{where}{key} is not a valid token count")
    return value


def _cost(obj: dict[str, Any]) -> float:
    value = obj.get("total_cost_usd", obj.get("cost_usd", 0.0))
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid("total_cost_usd is not a number")
    cost = float(value)
    if not math.isfinite(cost) or not 0.0 <= cost <= MAX_COST_USD:
        raise _Invalid("total_cost_usd is out of range")
    return cost


def _reply_from_object(obj: dict[str, Any], *, truncated: bool) -> AgentReply | str:
    """The reply in a result object, or the reason it is unusable."""
    kind = obj.get("type", "result")
    if kind != "result":
        return f"the JSON object is of type {str(kind)[:40]!r}, not 'result'"
    usage = obj.get("usage") or {}
    try:
        if not isinstance(usage, dict):
            raise _Invalid("usage is not an object")
        input_tokens = _count(usage, "input_tokens", where="usage.")
        output_tokens = _count(usage, "output_tokens", where="usage.")
        cache_creation = _count(usage, "cache_creation_input_tokens", where="usage.")
        cache_read = _count(usage, "cache_read_input_tokens", where="usage.")
        cost = _cost(obj)
    except _Invalid as exc:
        return f"invalid usage report: {exc}"

    subtype = obj.get("subtype")
    subtype = subtype[:64] if isinstance(subtype, str) else None
    session_id = obj.get("session_id")
    session_id = session_id[:128] if isinstance(session_id, str) else None
    turns = obj.get("num_turns")
    num_turns = turns if isinstance(turns, int) and not isinstance(turns, bool) else None
    is_error = obj.get("is_error")
    if not isinstance(is_error, bool):
        is_error = subtype not in (None, "success")
    text = obj.get("result")
    reason: str | None = None
    if is_error:
        reason = f"the agent reported an error ({subtype or 'unknown'})"
    if not isinstance(text, str):
        if not is_error:
            return "the result object has no reply text"
        text = f"[agent error] {reason}"
    return AgentReply(
        text=text,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost,
        is_error=is_error,
        raw_truncated=truncated,
        cache_creation_input_tokens=cache_creation,
        cache_read_input_tokens=cache_read,
        num_turns=num_turns,
        session_id=session_id,
        subtype=subtype,
        error_reason=reason,
    )


def _parse(output: bytes | str, *, truncated: bool) -> AgentReply | str:
    try:
        text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
        if not text.strip():
            return "the agent printed nothing"
        obj = _locate(text)
        if obj is None:
            if truncated:
                return "the output was truncated and is not valid JSON"
            return "the output is not a claude-json result"
        return _reply_from_object(obj, truncated=truncated)
    except Exception as exc:  # the last line of defence: agent output never crashes us
        return f"the output could not be parsed ({type(exc).__name__})"


def parse_claude_json(output: bytes | str, *, truncated: bool = False) -> AgentReply:
    """Parse the stdout of a claude-json agent. Never raises."""
    parsed = _parse(output, truncated=truncated)
    if isinstance(parsed, str):
        return _error(parsed, truncated=truncated)
    return parsed


def reply_from_run(run: RunResult) -> AgentReply:
    """The reply of a confined run: its parsed output, marked as an error whenever
    the run itself did not end well. Usage and cost are kept when they were
    reported, since a failed run may still have cost money. Never raises."""
    if not run.started:
        return _error(run.reason[:_MAX_REASON_CHARS], truncated=False)
    parsed = _parse(run.stdout, truncated=run.truncated)
    if run.ok:
        return _error(parsed, truncated=False) if isinstance(parsed, str) else parsed
    reasons = [f"the run did not complete: {run.reason}"]
    if isinstance(parsed, str):
        reasons.append(parsed)
        reason = "; ".join(reasons)[:_MAX_REASON_CHARS]
        return _error(reason, truncated=run.truncated)
    if parsed.error_reason:
        reasons.append(parsed.error_reason)
    reason = "; ".join(reasons)[:_MAX_REASON_CHARS]
    return replace(parsed, is_error=True, error_reason=reason, raw_truncated=run.truncated)
