"""The verdict on a finished run (what only the worker knows): why the guard stopped
it, its end state, reason, escalation and breaker outcome (``judge``), the reply with
the streamed usage kept (``with_stream_usage``), and what is stored of its output
(``transcript_of``, through the output gate)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from app.profiles.profiles import Limits
from app.runner import recovery
from app.runner.accounting import Refusal
from app.runner.budget import LiveBudget
from app.runner.gate import output_gate
from app.runner.output import AgentReply
from app.runner.process import RunResult, truncation_marker
from app.runner.runtime import StreamUsage
from app.security.credential_gate import redact

RAW_EXCERPT_CHARS = 64 * 1024
STDERR_TAIL_CHARS = 4 * 1024
MAX_REASON_CHARS = 500


@dataclass
class Stop:
    """Why the guard stopped a run: ``cancelled`` (by the API), ``lease_lost``,
    ``worker_stopping`` or ``limit`` (a quota/bound reached while running)."""

    kind: str | None = None
    refusal: Refusal | None = None


@dataclass
class Verdict:
    status: str | None  # None: the row was ended by someone else; only attach the record
    reason: str | None = None
    escalation: str | None = None
    escalation_details: dict[str, Any] = field(default_factory=dict)
    breaker: str | None = None  # "success" | "failure" | None
    requeue: bool = False


def transcript_of(
    reply: AgentReply, run: RunResult, limits: Limits, secret_values: Iterable[str]
) -> str:
    """What is stored of a run (F12, F14 on output): the reply text; when the output
    could not be used, a bounded excerpt of it and of stderr; the truncation marker
    when stdout hit its cap. Exact credential-file values and everything the
    credential gate recognises are redacted, excerpts *before* they are cut (with a
    margin), so a secret across a cut is still recognised."""
    gated = output_gate(secret_values)

    parts = [reply.text]
    if reply.is_error and reply.text.startswith("[agent error]"):
        raw = run.stdout.decode("utf-8", "replace")
        if raw.strip():
            excerpt = gated(raw[: 2 * RAW_EXCERPT_CHARS])[:RAW_EXCERPT_CHARS]
            parts.append(f"\n\n[agent output, first {RAW_EXCERPT_CHARS} characters]\n{excerpt}")
    if reply.is_error and run.stderr.strip():
        err = run.stderr.decode("utf-8", "replace")
        tail = gated(err[-2 * STDERR_TAIL_CHARS :])[-STDERR_TAIL_CHARS:]
        parts.append(f"\n\n[agent stderr, last {STDERR_TAIL_CHARS} characters]\n{tail}")
    if run.truncated:
        parts.append(truncation_marker(limits.stdout_cap_bytes).decode())
    return gated("".join(parts))


def reason_text(text: str) -> str:
    return redact(text).text[:MAX_REASON_CHARS]


def judge(
    run: RunResult,
    reply: AgentReply,
    stop: Stop,
    limits: Limits,
    denied: list[str] | None = None,
) -> Verdict:
    """The verdict on a finished run: its end state and reason, the escalation it
    opens, what it tells the profile's breaker, whether it is re-queued."""
    if not run.cancelled:
        # the run ended by itself before the guard's cancel landed: judge the run; a
        # conversation ended meanwhile by someone else is caught by ``finish``
        stop = Stop()
    if stop.kind in ("cancelled", "lease_lost"):
        return Verdict(status=None)
    if stop.kind == "worker_stopping":
        return Verdict("FAILED", recovery.STOP_REASON, requeue=True)
    if stop.kind == "limit" and stop.refusal is not None:
        return Verdict(
            "FAILED",
            f"{stop.refusal.reason} (stopped while running)",
            escalation=stop.refusal.escalation,
            escalation_details=stop.refusal.details,
        )
    if run.timed_out:
        return Verdict(
            "FAILED",
            f"timeout: wall-clock limit of {limits.wall_clock_seconds:g} s reached",
            escalation="run_timeout",
            escalation_details={"wall_clock_seconds": limits.wall_clock_seconds},
            breaker="failure",
        )
    if run.truncated:
        return Verdict(
            "FAILED",
            f"output_cap: stdout exceeded {limits.stdout_cap_bytes} bytes",
            escalation="output_cap",
            escalation_details={"stdout_cap_bytes": limits.stdout_cap_bytes},
            breaker="failure",
        )
    if reply.subtype == "error_max_budget_usd":
        # the CLI stopped itself at the budget we passed it: a bound, not a fault
        return Verdict(
            "FAILED",
            "budget_exhausted: the agent stopped at the budget left to it",
            escalation="run_budget",
            escalation_details={"subtype": reply.subtype},
        )
    denied_text = ", ".join(denied or [])
    if reply.is_error:
        reason = reply.error_reason or "agent error"
        if denied_text:
            reason = f"{reason}; tools denied: {denied_text}"
        return Verdict("FAILED", reason_text(reason), breaker="failure")
    if denied:
        # never a plain success: work that needed these tools was not done
        return Verdict(
            "FAILED",
            reason_text(
                f"tools_denied: {denied_text} (not allowed to this agent; the work that"
                " needed them was not done)"
            ),
            escalation="tools_denied",
            escalation_details={"denied_tools": list(denied)},
        )
    return Verdict("SUCCEEDED", breaker="success")


def with_stream_usage(reply: AgentReply, usage: StreamUsage, budget: LiveBudget) -> AgentReply:
    """The reply with the larger of the reported and the streamed usage, field by
    field, and of the reported and the priced cost: a run stopped before its result
    line (a bound, a timeout, the output cap, a crash) still records what it used."""
    return replace(
        reply,
        input_tokens=max(reply.input_tokens, usage.input_tokens),
        output_tokens=max(reply.output_tokens, usage.output_tokens),
        cache_creation_input_tokens=max(
            reply.cache_creation_input_tokens, usage.cache_write_tokens
        ),
        cache_read_input_tokens=max(reply.cache_read_input_tokens, usage.cache_read_tokens),
        cost_usd=max(reply.cost_usd, budget.cost_of(usage)),
    )
