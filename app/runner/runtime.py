"""Runtime adapters: how the worker talks to one kind of agent CLI.

A profile names its ``runtime``; the adapter registered under that name
(:data:`RUNTIMES`) turns the run's capability into the CLI's command line,
prepares the run's fresh HOME (a CLI's own config files), reads the CLI's output
as it streams (usage per model turn for the live budget, denied tools, the
session id) and turns what it printed into an :class:`AgentReply`.

Adding a CLI: a module with a :class:`Runtime` implementation, its entry in
:data:`RUNTIMES`, the flags it owns in ``profiles.RUNTIME_OWNED_FLAGS`` and its
name in ``profiles.Runtime`` (docs/capability.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from app.capability.model import Capability, Tool
from app.profiles.environment import ChildEnv
from app.runner.output import AgentReply, reply_from_run
from app.runner.process import RunResult

#: the largest token count a stream may report (a hostile figure is cut here)
MAX_TOKENS = 10**10


def token_count(value: Any) -> int:
    """A token figure from a CLI's output: a non-negative int, bounded; anything
    else (text, booleans, non-finite numbers) counts as 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return max(0, min(int(value), MAX_TOKENS))


#: a longer output line (a huge tool result) is skipped, not buffered
MAX_LINE_BYTES = 16 * 1024 * 1024


class LineSplitter:
    """A CLI's output bytes to complete lines, however they were split; a line
    longer than ``MAX_LINE_BYTES`` is skipped (counted), never buffered."""

    def __init__(self) -> None:
        self._partial = bytearray()
        self._discarding = False
        self.skipped = 0

    def split(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline < 0:
                rest = data[start:]
                if not self._discarding:
                    if len(self._partial) + len(rest) > MAX_LINE_BYTES:
                        self._partial.clear()
                        self._discarding = True
                        self.skipped += 1
                    else:
                        self._partial += rest
                return lines
            piece = data[start : newline + 1]
            start = newline + 1
            if self._discarding:
                self._discarding = False
                continue
            if self._partial:
                self._partial += piece
                lines.append(bytes(self._partial))
                self._partial.clear()
            else:
                lines.append(piece)

    def rest(self) -> bytes:
        """The last line when the output did not end with a newline."""
        line = b"" if self._discarding else bytes(self._partial)
        self._partial.clear()
        return line


def tool_names(capability: Capability, table: Mapping[Tool, tuple[str, ...]]) -> list[str]:
    """A runtime's own tool names for the tools the capability grants, in a stable order."""
    return [name for tool in Tool if tool in capability.tools for name in table[tool]]


@dataclass(frozen=True, slots=True)
class StreamUsage:
    """Tokens seen so far in a run's stream, split as the provider bills them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    turns: int = 0

    @property
    def total(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_write_tokens
            + self.cache_read_tokens
        )


def stream_reply(
    run: RunResult,
    *,
    text: str | None,
    usage: StreamUsage,
    cost_usd: float,
    session_id: str | None,
    problem: str | None,
) -> AgentReply:
    """The reply of a run whose CLI streams its events. ``problem``: what the stream
    saw go wrong (an error event, no end of turn), or None. A run that did not start
    says why; one without reply text is an error; a run that did not end well says so
    first. Never raises."""
    reason = problem
    if not run.started:
        reason = run.reason[:300]
    elif reason is None and text is None:
        reason = "the agent gave no reply text"
    if run.started and not run.ok:
        reason = f"the run did not complete: {run.reason}" + (f"; {reason}" if reason else "")
    is_error = reason is not None
    return AgentReply(
        text=text if text is not None else f"[agent error] {reason}",
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=cost_usd,
        is_error=is_error,
        raw_truncated=run.truncated,
        cache_creation_input_tokens=usage.cache_write_tokens,
        cache_read_input_tokens=usage.cache_read_tokens,
        num_turns=usage.turns or None,
        session_id=session_id,
        subtype="error" if is_error else "success",
        error_reason=reason[:300] if reason else None,
    )


class StreamReader(Protocol):
    """Reads a CLI's stdout as it arrives (see :class:`app.runner.process.StdoutSink`)."""

    on_usage: Callable[[StreamUsage], None] | None

    @property
    def usage(self) -> StreamUsage: ...

    @property
    def denied(self) -> list[str]: ...

    @property
    def session_id(self) -> str | None: ...

    def feed(self, data: bytes) -> bytes: ...

    def close(self) -> bytes: ...


def runtime_env(runtime: Runtime, env: ChildEnv) -> ChildEnv:
    """The run's environment plus the variables a runtime always sets (its optional
    ``fixed_env``: opencode's switches that keep a workspace's config out)."""
    fixed = getattr(runtime, "fixed_env", None)
    return env.with_values(fixed) if isinstance(fixed, Mapping) and fixed else env


def watch_home(reader: StreamReader, home: Path) -> None:
    """Tell a reader the run's fresh HOME, when it reads files the CLI writes there
    (Codex's session file: a reader's optional ``watch_home(home)``)."""
    watch = getattr(reader, "watch_home", None)
    if callable(watch):
        watch(home)


def attach_output(reader: StreamReader, callback: Callable[[str, str], None]) -> bool:
    """Ask a reader for live output pieces (kind, text), when it can give them."""
    if hasattr(reader, "on_output"):
        reader.on_output = callback
        return True
    return False


class Runtime(Protocol):
    """One agent CLI's dialect."""

    name: str
    #: its spend must be priced from the price table while it runs (no price: no run)
    needs_price: bool

    def command_line(
        self,
        argv: list[str],
        capability: Capability,
        *,
        max_turns: int,
        max_budget_usd: float | None,
    ) -> list[str]:
        """The profile's rendered argv plus the flags of this capability and budget."""
        ...

    def prepare_home(self, home: Path, options: Mapping[str, Any], *, model: str) -> None:
        """Write the CLI's own configuration into the run's fresh HOME (may be a no-op).
        Raises :class:`~app.profiles.profiles.ProfileError` for unusable options."""
        ...

    def reader(self, capability: Capability) -> StreamReader:
        """A fresh reader of this run's output."""
        ...

    def reply(self, run: RunResult, reader: StreamReader) -> AgentReply:
        """The run's reply: its final text, error state and reported usage."""
        ...


@runtime_checkable
class ResumableRuntime(Protocol):
    """A runtime whose CLI can continue an earlier session (follow-up turns). The
    session's files live in the run's HOME, which is removed after every run: the
    worker keeps them in its own store (``state/sessions``, out of every run's
    reach) and puts them back into the HOME of the run that resumes."""

    def resume_args(self, session_id: str) -> list[str]:
        """The flags that resume ``session_id``."""
        ...

    def save_session(self, home: Path, session_id: str, store: Path) -> bool:
        """Copy the session's files from a finished run's HOME into ``store``."""
        ...

    def restore_session(self, home: Path, session_id: str, store: Path) -> bool:
        """Put the session's files from ``store`` into a new run's HOME."""
        ...


class GenericRuntime:
    """A program whose argv is passed as written; its final output is the Claude
    result object (``claude-json``), any Claude-style stream lines before it are
    read for usage. Nothing is inferred about tools."""

    name = "generic"
    needs_price = False

    def command_line(
        self,
        argv: list[str],
        capability: Capability,
        *,
        max_turns: int,
        max_budget_usd: float | None,
    ) -> list[str]:
        return list(argv)

    def prepare_home(self, home: Path, options: Mapping[str, Any], *, model: str) -> None:
        return None

    def reader(self, capability: Capability) -> StreamReader:
        from app.runner.claude_code import ClaudeStream

        return ClaudeStream(granted=None)

    def reply(self, run: RunResult, reader: StreamReader) -> AgentReply:
        return reply_from_run(run)


def runtimes() -> dict[str, Runtime]:
    """Every runtime adapter by name (imported on first use: the API never needs them)."""
    from app.runner.claude_code import ClaudeCodeRuntime
    from app.runner.codex import CodexRuntime
    from app.runner.gemini import GeminiRuntime
    from app.runner.opencode import OpencodeRuntime

    return {
        "generic": GenericRuntime(),
        "claude-code": ClaudeCodeRuntime(),
        "gemini": GeminiRuntime(),
        "codex": CodexRuntime(),
        "opencode": OpencodeRuntime(),
    }
