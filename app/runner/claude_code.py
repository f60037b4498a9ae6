"""The Claude Code runtime: capability to command line, and its stream read live.

Command line (docs/capability.md has the table)::

    <profile argv> -p --output-format stream-json --verbose --include-partial-messages
      --tools T --allowedTools T --disallowedTools D --permission-mode dontAsk
      --permission-prompts none --restricted --strict-mcp-config --setting-sources ""
      --max-turns N [--max-budget-usd B]

``--tools`` offers the model exactly the granted tools (the others do not exist
for it), ``--allowedTools`` pre-approves them so nothing prompts, and
``--disallowedTools`` names every other tool so a setting cannot add one back.
``dontAsk`` with ``--permission-prompts none`` denies whatever would prompt;
``--restricted`` ignores user, project and local settings files (an agent cannot
grant itself a tool by writing ``.claude/settings.json`` into its workspace) and
keeps the file tools in the working directory. ``--dangerously-skip-permissions``
is never passed and a profile containing it is refused
(:mod:`app.profiles.profiles`).

The output is read as it arrives (:class:`ClaudeStream`): every model turn's
usage (``message_start`` for input and cache tokens, ``message_delta`` for output
tokens), the tools the model asked for, the denials the CLI reports, the session
id and the final result object. The kernel sandbox enforces the same capability
underneath (:mod:`app.runner.sandbox`).
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.capability.model import Capability, Tool
from app.runner.output import AgentReply, reply_from_run
from app.runner.process import RunResult
from app.runner.runtime import LineSplitter, StreamReader, StreamUsage, token_count, tool_names

#: our tools to Claude Code's tool names
TOOL_NAMES: dict[Tool, tuple[str, ...]] = {
    Tool.READ_FILES: ("Read", "Glob", "Grep"),
    Tool.WRITE_FILES: ("Edit", "Write", "MultiEdit", "NotebookEdit"),
    Tool.WEB_FETCH: ("WebFetch",),
    Tool.WEB_SEARCH: ("WebSearch",),
    Tool.SHELL: ("Bash",),
}
#: tools never granted: they start other agents, schedule work or reach outside the
#: run's capability (named in --disallowedTools so no setting can add them back)
ALWAYS_DENIED: tuple[str, ...] = (
    "Task",
    "Agent",
    "BashOutput",
    "KillShell",
    "CronCreate",
    "CronDelete",
    "EnterWorktree",
    "ExitWorktree",
    "ScheduleWakeup",
    "SendMessage",
    "Workflow",
    "Monitor",
    "Skill",
    "SlashCommand",
)


def granted_tool_names(capability: Capability) -> list[str]:
    """Claude Code tool names the capability grants, in a stable order."""
    return tool_names(capability, TOOL_NAMES)


def denied_tool_names(capability: Capability) -> list[str]:
    granted = set(granted_tool_names(capability))
    names = [n for tool in Tool for n in TOOL_NAMES[tool] if n not in granted]
    return names + [n for n in ALWAYS_DENIED if n not in granted]


def command_line(
    base_argv: list[str],
    capability: Capability,
    *,
    max_turns: int,
    max_budget_usd: float | None,
) -> list[str]:
    """The profile's argv with the flags that give the run exactly ``capability``."""
    granted = ",".join(granted_tool_names(capability))
    argv = [
        *base_argv,
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--tools",
        granted,
    ]
    if granted:
        argv += ["--allowedTools", granted]
    argv += [
        "--disallowedTools",
        ",".join(denied_tool_names(capability)),
        "--permission-mode",
        "dontAsk",
        "--permission-prompts",
        "none",
        "--restricted",
        "--strict-mcp-config",
        "--setting-sources",
        "",
        "--max-turns",
        str(max_turns),
    ]
    if max_budget_usd is not None:
        # the CLI stops itself at its own estimate; ours stops it too (live budgets)
        argv += ["--max-budget-usd", f"{max(max_budget_usd, 0.0):.6f}"]
    return argv


# --------------------------------------------------------------------------- stream


@dataclass
class _Turn:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write: int = 0
    cache_read: int = 0


def _compact(value: Any) -> str:
    """A tool call's input, short, for the live view."""
    try:
        return json.dumps(value, ensure_ascii=False)[:300]
    except (TypeError, ValueError, RecursionError):
        return "{...}"


@dataclass
class ClaudeStream:
    """Reads Claude Code's stream-json output incrementally.

    ``feed`` takes whatever bytes arrived (any split), handles each complete line,
    and returns the bytes worth keeping as the run's output: every line but the
    partial-message events (``stream_event``), which only repeat the assistant
    messages token by token and would fill the output cap. ``on_usage`` is called,
    synchronously, each time a line changed the usage: the live budget check.
    Never raises on hostile input: unreadable lines are skipped.
    """

    #: the tool names the flags granted (None: unknown, nothing is inferred)
    granted: frozenset[str] | None = None
    on_usage: Callable[[StreamUsage], None] | None = None
    session_id: str | None = None
    #: tool names the model asked for, in order (repeats kept once)
    requested: list[str] = field(default_factory=list)
    #: tools refused to the model: asked for but not granted, or denied by the CLI
    denied: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    #: live output: called with (kind, text) for the agent's text, tool calls and
    #: tool results as they arrive (app/runner/live.py batches them)
    on_output: Callable[[str, str], None] | None = None
    lines: int = 0
    skipped: int = 0
    _turns: dict[str, _Turn] = field(default_factory=dict)
    _current: str | None = None
    _lines: LineSplitter = field(default_factory=LineSplitter)
    _usage: StreamUsage = field(default_factory=StreamUsage)
    #: turns whose text arrived as token deltas (not repeated from the message)
    _streamed: set[str] = field(default_factory=set)

    @property
    def usage(self) -> StreamUsage:
        return self._usage

    @property
    def current_turn(self) -> str | None:
        """The message id of the model turn being streamed."""
        return self._current

    def feed(self, data: bytes) -> bytes:
        keep = bytearray()
        for line in self._lines.split(data):
            if self._line(line):
                keep += line
        return bytes(keep)

    def close(self) -> bytes:
        """The last line when the output did not end with a newline."""
        line = self._lines.rest()
        return line if line and self._line(line) else b""

    # ----------------------------------------------------------------- lines

    def _line(self, line: bytes) -> bool:
        """Handle one line; True when it is kept as output."""
        self.lines += 1
        stripped = line.strip()
        if not stripped.startswith(b"{"):
            return True
        is_event = stripped.startswith(b'{"type":"stream_event"')
        if is_event and b'"message_start"' not in stripped and b'"message_delta"' not in stripped:
            if self.on_output is not None and b'"text_delta"' in stripped:
                self._text_delta(stripped)
            return False  # token deltas: nothing to account, not worth keeping
        try:
            obj = json.loads(stripped)
        except (ValueError, RecursionError):
            self.skipped += 1
            return not is_event
        if not isinstance(obj, dict):
            return True
        kind = obj.get("type")
        if kind == "stream_event":
            self._event(obj.get("event"))
            return False
        if kind == "assistant":
            self._assistant(obj.get("message"))
        elif kind == "user" and self.on_output is not None:
            self._tool_results(obj.get("message"))
        elif kind == "system":
            self._system(obj)
        elif kind == "result":
            self.result = obj
            self._result_denials(obj.get("permission_denials"))
            if isinstance(obj.get("session_id"), str):
                self.session_id = obj["session_id"][:128]
        return True

    def _event(self, event: Any) -> None:
        if not isinstance(event, dict):
            return
        if event.get("type") == "message_start":
            message = event.get("message")
            if not isinstance(message, dict):
                return
            message_id = str(message.get("id") or f"turn-{len(self._turns)}")[:128]
            self._current = message_id
            turn = self._turns.setdefault(message_id, _Turn())
            self._apply(turn, message.get("usage"))
        elif event.get("type") == "message_delta" and self._current is not None:
            self._apply(self._turns[self._current], event.get("usage"))

    def _text_delta(self, line: bytes) -> None:
        try:
            event = json.loads(line).get("event") or {}
        except (ValueError, RecursionError, AttributeError):
            return
        delta = event.get("delta") if isinstance(event, dict) else None
        if isinstance(delta, dict) and isinstance(delta.get("text"), str) and self.on_output:
            if self._current is not None:
                self._streamed.add(self._current)
            self.on_output("text", delta["text"])

    def _tool_results(self, message: Any) -> None:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list) or self.on_output is None:
            return
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                value = block.get("content")
                if isinstance(value, list):
                    value = " ".join(
                        str(part.get("text", "")) for part in value if isinstance(part, dict)
                    )
                self.on_output("result", str(value or "")[:500])

    def _assistant(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        message_id = message.get("id")
        if isinstance(message_id, str):
            # without partial messages (or before them): the usage the line carries
            turn = self._turns.setdefault(message_id[:128], _Turn())
            self._apply(turn, message.get("usage"))
        content = message.get("content")
        if not isinstance(content, list):
            return
        streamed = isinstance(message_id, str) and message_id[:128] in self._streamed
        for block in content:
            if not isinstance(block, dict):
                continue
            if self.on_output is not None and block.get("type") == "text" and not streamed:
                self.on_output("text", str(block.get("text") or "") + "\n")
            if block.get("type") == "tool_use":
                name = str(block.get("name") or "?")[:64]
                if self.on_output is not None:
                    self.on_output("tool", f"{name} {_compact(block.get('input'))}")
                if name not in self.requested:
                    self.requested.append(name)
                if self.granted is not None and name not in self.granted:
                    self._deny(name)

    def _system(self, obj: dict[str, Any]) -> None:
        if isinstance(obj.get("session_id"), str) and self.session_id is None:
            self.session_id = obj["session_id"][:128]
        if obj.get("subtype") == "permission_denied":
            self._deny(str(obj.get("tool_name") or "?")[:64])

    def _result_denials(self, denials: Any) -> None:
        if isinstance(denials, list):
            for item in denials[:100]:
                if isinstance(item, dict):
                    self._deny(str(item.get("tool_name") or "?")[:64])

    def _deny(self, name: str) -> None:
        if name not in self.denied and len(self.denied) < 100:
            self.denied.append(name)

    def _apply(self, turn: _Turn, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        added = [0, 0, 0, 0]
        for index, (attr, key) in enumerate(
            (
                ("input_tokens", "input_tokens"),
                ("output_tokens", "output_tokens"),
                ("cache_write", "cache_creation_input_tokens"),
                ("cache_read", "cache_read_input_tokens"),
            )
        ):
            if key in usage:
                value = token_count(usage[key])
                # a turn's figures only grow (message_delta repeats them cumulatively)
                before = getattr(turn, attr)
                if value > before:
                    setattr(turn, attr, value)
                    added[index] = value - before
        if any(added):
            old = self._usage
            self._usage = StreamUsage(
                input_tokens=old.input_tokens + added[0],
                output_tokens=old.output_tokens + added[1],
                cache_write_tokens=old.cache_write_tokens + added[2],
                cache_read_tokens=old.cache_read_tokens + added[3],
                turns=len(self._turns),
            )
            if self.on_usage is not None:
                self.on_usage(self._usage)


_SESSION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SESSION_DIR = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
#: a session transcript larger than this is not kept (the follow-up then fails clearly)
MAX_SESSION_BYTES = 32 * 1024 * 1024


def _copy_regular(source: Path, target: Path) -> bool:
    """Copy a regular file (never through a symlink), at most MAX_SESSION_BYTES, 0600."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SESSION_BYTES:
            return False
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            while chunk := os.read(fd, 1 << 20):
                os.write(out, chunk)
        finally:
            os.close(out)
        return True
    finally:
        os.close(fd)


class ClaudeCodeRuntime:
    """The Claude Code CLI (``claude -p``): flags from the capability, stream-json."""

    name = "claude-code"
    needs_price = True

    def command_line(
        self,
        argv: list[str],
        capability: Capability,
        *,
        max_turns: int,
        max_budget_usd: float | None,
    ) -> list[str]:
        return command_line(argv, capability, max_turns=max_turns, max_budget_usd=max_budget_usd)

    def prepare_home(self, home: Path, options: Mapping[str, Any], *, model: str) -> None:
        return None

    def reader(self, capability: Capability) -> StreamReader:
        return ClaudeStream(granted=frozenset(granted_tool_names(capability)))

    def reply(self, run: RunResult, reader: StreamReader) -> AgentReply:
        return reply_from_run(run)

    # Claude Code keeps a session as ~/.claude/projects/<dir>/<session id>.jsonl
    # (<dir> is derived from the working directory; a follow-up runs in the same one).

    def resume_args(self, session_id: str) -> list[str]:
        return ["--resume", session_id]

    def save_session(self, home: Path, session_id: str, store: Path) -> bool:
        if not _SESSION_ID.match(session_id):
            return False
        projects = home / ".claude" / "projects"
        try:
            folders = [e for e in os.scandir(projects) if e.is_dir(follow_symlinks=False)]
        except OSError:
            return False
        for folder in folders:
            if _SESSION_DIR.match(folder.name):
                source = Path(folder.path) / f"{session_id}.jsonl"
                if _copy_regular(source, store / folder.name / f"{session_id}.jsonl"):
                    return True
        return False

    def restore_session(self, home: Path, session_id: str, store: Path) -> bool:
        if not _SESSION_ID.match(session_id):
            return False
        try:
            folders = [e for e in os.scandir(store) if e.is_dir(follow_symlinks=False)]
        except OSError:
            return False
        for folder in folders:
            source = Path(folder.path) / f"{session_id}.jsonl"
            target = home / ".claude" / "projects" / folder.name / f"{session_id}.jsonl"
            if _SESSION_DIR.match(folder.name) and _copy_regular(source, target):
                return True
        return False
