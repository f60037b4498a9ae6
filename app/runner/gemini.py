"""The Gemini CLI runtime: capability to command line and settings, its stream read live.

Command line (docs/capability.md has the table)::

    <profile argv> -p "" --output-format stream-json --approval-mode yolo --skip-trust

The prompt arrives on stdin (``-p`` appends it to what stdin carries). What the
agent may use is not in the command line but in the run's fresh HOME, written by
:meth:`GeminiRuntime.prepare_home` before the CLI starts:

* ``HOME/.gemini/settings.json``: the API-key auth selection, ``tools.core`` = the
  Gemini tools the capability grants (the others are not declared to the model),
  ``model.maxSessionTurns`` = the run's turn limit, no MCP servers, telemetry,
  usage statistics, hooks or extensions, and ``advanced.ignoreLocalEnv`` (no
  ``.env`` file from the workspace or above it: one could point the CLI, and its
  key, at another endpoint);
* ``HOME/.gemini/policies/mission-control.toml``: a user-tier policy that allows
  the granted tools and denies every other tool (``toolName = "*"``). The user
  tier outranks a workspace's own ``.gemini/`` policies and a tool denied by policy
  is not declared either, so an agent that writes ``.gemini/settings.json`` or a
  policy into its workspace cannot give its next run a tool.

``--approval-mode yolo`` approves only what the policy leaves allowed: the granted
tools (nothing waits for a person who is not there); ``--skip-trust`` trusts the
run's own workspace for this session only. The endpoint and key come from the
profile's credential file (``GOOGLE_GEMINI_BASE_URL``, ``GEMINI_API_KEY``).

Live usage: Gemini CLI 0.61's stream-json carries no token counts before its final
``result`` event, but the CLI records every model turn, with its tokens, in the
session file it writes under ``HOME/.gemini/tmp/<project>/chats/`` as the turn
ends. :class:`GeminiStream` reads the stdout events (tool calls, refusals, the
session id, the result) and, each time stdout moves or the usage is asked for,
the new lines of those session files: the usage of every finished turn reaches
the budget check before the CLI makes its next call. The kernel sandbox enforces
the same capability underneath (:mod:`app.runner.sandbox`).
"""

from __future__ import annotations

import contextvars
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app.capability.model import Capability, Tool
from app.profiles.profiles import ProfileError
from app.runner.output import AgentReply, reply_from_run
from app.runner.process import RunResult
from app.runner.runtime import LineSplitter, StreamReader, StreamUsage, token_count, tool_names

#: our tools to Gemini CLI's built-in tool names
TOOL_NAMES: dict[Tool, tuple[str, ...]] = {
    Tool.READ_FILES: ("read_file", "read_many_files", "glob", "grep_search", "list_directory"),
    Tool.WRITE_FILES: ("write_file", "replace"),
    Tool.WEB_FETCH: ("web_fetch",),
    Tool.WEB_SEARCH: ("google_web_search",),
    Tool.SHELL: ("run_shell_command",),
}
#: the policy file's name in HOME/.gemini/policies
POLICY_FILE = "mission-control.toml"
#: error types of a tool_result that mean the CLI refused the call
_REFUSALS = frozenset({"tool_not_registered", "policy_violation", "permission_denied"})
#: session files followed per run (the main session; subagents are never granted)
_MAX_SESSION_FILES = 8
#: bytes of session files read per poll (a huge tool result is skipped, not buffered)
_MAX_READ_BYTES = 4 * 1024 * 1024
#: the usage property polls the session files at most this often
_POLL_INTERVAL_S = 0.2
DEFAULT_MAX_TURNS = 50


def granted_tool_names(capability: Capability) -> list[str]:
    """Gemini CLI tool names the capability grants, in a stable order."""
    return tool_names(capability, TOOL_NAMES)


def command_line(base_argv: list[str]) -> list[str]:
    """The profile's argv with the flags every run gets (tools come from HOME)."""
    return [
        *base_argv,
        "-p",
        "",
        "--output-format",
        "stream-json",
        "--approval-mode",
        "yolo",
        "--skip-trust",
    ]


#: the Google sign-in's file (runtime_options.LOGIN_FILES): with it, that sign-in
LOGIN_FILE = ".gemini/oauth_creds.json"


def settings(capability: Capability, *, max_turns: int, login: bool = False) -> dict[str, Any]:
    """HOME/.gemini/settings.json for a run with ``capability``; ``login``: the
    profile's subscription login (a Google sign-in) instead of the API key."""
    return {
        "security": {"auth": {"selectedType": "oauth-personal" if login else "gemini-api-key"}},
        "tools": {"core": granted_tool_names(capability)},
        "model": {"maxSessionTurns": max_turns},
        "mcpServers": {},
        "telemetry": {"enabled": False},
        "privacy": {"usageStatisticsEnabled": False},
        "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
        "hooksConfig": {"enabled": False},
        "skills": {"enabled": False},
        # a .env file in the workspace (or above it) would otherwise set the CLI's
        # endpoint when the profile does not: the API key sent to another host
        "advanced": {"ignoreLocalEnv": True},
    }


def policy(capability: Capability) -> str:
    """The user-tier policy: the granted tools allowed, every other tool denied."""
    granted = granted_tool_names(capability)
    lines = ["# Written per run by Mission Control (app/runner/gemini.py).", ""]
    if granted:
        names = ", ".join(json.dumps(name) for name in granted)
        lines += ["[[rule]]", f"toolName = [{names}]", 'decision = "allow"', "priority = 900", ""]
    lines += ["[[rule]]", 'toolName = "*"', 'decision = "deny"', "priority = 800", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- stream


@dataclass
class _Turn:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read: int = 0


@dataclass
class GeminiStream:
    """Reads Gemini CLI's stream-json output (and its session files) incrementally.

    ``feed`` takes whatever bytes arrived (any split), handles each complete line
    and returns them all as the run's output. ``on_usage`` is called, synchronously,
    each time the usage grew: the live budget check. Never raises on hostile input:
    unreadable lines are skipped, and the usage seen so far is kept.
    """

    #: the tool names the settings granted (None: unknown, nothing is inferred)
    granted: frozenset[str] | None = None
    on_usage: Callable[[StreamUsage], None] | None = None
    session_id: str | None = None
    #: the run's HOME, where the CLI writes its session files (None: stdout only)
    home: Path | None = None
    #: tool names the model asked for, in order (repeats kept once)
    requested: list[str] = field(default_factory=list)
    #: tools refused to the model: asked for but not granted, or refused by the CLI
    denied: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    #: assistant text since the last tool call (the final answer)
    text: str = ""
    lines: int = 0
    skipped: int = 0
    _tool_ids: dict[str, str] = field(default_factory=dict)
    _turns: dict[str, _Turn] = field(default_factory=dict)
    _reported: StreamUsage | None = None
    #: the sum of the turns read from the session files
    _sum: StreamUsage = field(default_factory=StreamUsage)
    _usage: StreamUsage = field(default_factory=StreamUsage)
    _out: LineSplitter = field(default_factory=LineSplitter)
    _files: dict[str, tuple[int, LineSplitter]] = field(default_factory=dict)
    _polled_at: float = 0.0

    @property
    def usage(self) -> StreamUsage:
        if self._reported is None and time.monotonic() - self._polled_at >= _POLL_INTERVAL_S:
            self.poll()
        return self._usage

    def watch_home(self, home: Path) -> None:
        """Follow the session files the CLI writes in the run's HOME."""
        self.home = home

    def feed(self, data: bytes) -> bytes:
        for line in self._out.split(data):
            self._line(line)
        self.skipped = self._out.skipped
        self.poll()
        return data

    def close(self) -> bytes:
        line = self._out.rest()
        if line:
            self._line(line)
        self.poll()
        return b""

    # ----------------------------------------------------------------- stdout

    def _line(self, line: bytes) -> None:
        self.lines += 1
        stripped = line.strip()
        if not stripped.startswith(b"{"):
            return
        try:
            obj = json.loads(stripped)
        except (ValueError, RecursionError):
            self.skipped += 1
            return
        if not isinstance(obj, dict):
            return
        kind = obj.get("type")
        if kind == "init":
            if isinstance(obj.get("session_id"), str) and self.session_id is None:
                self.session_id = obj["session_id"][:128]
        elif kind == "message":
            content = obj.get("content")
            if obj.get("role") == "assistant" and isinstance(content, str):
                self.text = (self.text + content)[:1_000_000]
        elif kind == "tool_use":
            self._tool_use(obj)
        elif kind == "tool_result":
            self._tool_result(obj)
        elif kind == "result":
            self.result = obj
            self._result_usage(obj.get("stats"))

    def _tool_use(self, obj: dict[str, Any]) -> None:
        self.text = ""
        name = str(obj.get("tool_name") or "?")[:64]
        tool_id = obj.get("tool_id")
        if isinstance(tool_id, str) and len(self._tool_ids) < 10_000:
            self._tool_ids[tool_id[:256]] = name
        if name not in self.requested and len(self.requested) < 100:
            self.requested.append(name)
        if self.granted is not None and name not in self.granted:
            self._deny(name)

    def _tool_result(self, obj: dict[str, Any]) -> None:
        if obj.get("status") != "error":
            return
        error = obj.get("error")
        kind = error.get("type") if isinstance(error, dict) else None
        if kind in _REFUSALS:
            tool_id = obj.get("tool_id")
            name = self._tool_ids.get(tool_id[:256], "?") if isinstance(tool_id, str) else "?"
            self._deny(name)

    def _deny(self, name: str) -> None:
        if name not in self.denied and len(self.denied) < 100:
            self.denied.append(name)

    def _result_usage(self, stats: Any) -> None:
        """The CLI's own totals: they replace the per-turn sum (never lowering it)."""
        if not isinstance(stats, dict):
            return
        prompt = token_count(stats.get("input_tokens"))
        cached = min(token_count(stats.get("cached")), prompt)
        output = token_count(stats.get("output_tokens"))
        # thoughts are billed as output; the result counts them only in the total
        thoughts = max(0, token_count(stats.get("total_tokens")) - prompt - output)
        self._reported = StreamUsage(
            input_tokens=prompt - cached,
            output_tokens=output + thoughts,
            cache_read_tokens=cached,
        )
        self._refresh()

    # ----------------------------------------------------------------- session files

    def poll(self) -> None:
        """Read what the CLI appended to its session files since the last poll."""
        self._polled_at = time.monotonic()
        if self.home is None:
            return
        try:
            for path in self._session_files():
                self._read_file(path)
        except OSError:
            return

    def _session_files(self) -> list[str]:
        root = self.home / ".gemini" / "tmp" if self.home is not None else None
        if root is None:
            return []
        found = list(self._files)
        if len(found) >= _MAX_SESSION_FILES:
            return found
        try:
            projects = sorted(os.scandir(root), key=lambda e: e.name)[:16]
        except OSError:
            return found
        for project in projects:
            chats = os.path.join(project.path, "chats")  # noqa: PTH118
            try:
                entries = sorted(os.scandir(chats), key=lambda e: e.name)[:64]
            except OSError:
                continue
            for entry in entries:
                if (
                    entry.name.startswith("session-")
                    and entry.name.endswith(".jsonl")
                    and entry.path not in found
                    and len(found) < _MAX_SESSION_FILES
                ):
                    found.append(entry.path)
        return found

    def _read_file(self, path: str) -> None:
        offset, lines = self._files.get(path, (0, LineSplitter()))
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(path, flags)
        except OSError:
            return
        try:
            os.lseek(fd, offset, os.SEEK_SET)
            data = os.read(fd, _MAX_READ_BYTES)
        finally:
            os.close(fd)
        self._files[path] = (offset + len(data), lines)
        for line in lines.split(data):
            self._session_line(line)

    def _session_line(self, line: bytes) -> None:
        if b'"gemini"' not in line or b'"tokens"' not in line:
            return
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            return
        if not isinstance(obj, dict) or obj.get("type") != "gemini":
            return
        tokens = obj.get("tokens")
        message_id = obj.get("id")
        if not isinstance(tokens, dict) or not isinstance(message_id, str):
            return
        prompt = token_count(tokens.get("input")) + token_count(tokens.get("tool"))
        cached = min(token_count(tokens.get("cached")), prompt)
        seen = _Turn(
            input_tokens=prompt - cached,
            output_tokens=token_count(tokens.get("output")) + token_count(tokens.get("thoughts")),
            cache_read=cached,
        )
        key = message_id[:128]
        if key not in self._turns and len(self._turns) >= 100_000:
            return
        turn = self._turns.setdefault(key, _Turn())
        added = [0, 0, 0]
        for index, attr in enumerate(("input_tokens", "output_tokens", "cache_read")):
            value, before = getattr(seen, attr), getattr(turn, attr)
            if value > before:  # a turn's record is repeated, its figures only grow
                setattr(turn, attr, value)
                added[index] = value - before
        if any(added):
            old = self._sum
            self._sum = StreamUsage(
                input_tokens=old.input_tokens + added[0],
                output_tokens=old.output_tokens + added[1],
                cache_read_tokens=old.cache_read_tokens + added[2],
            )
            self._refresh()

    def _refresh(self) -> None:
        """The usage: field by field the larger of the turns' sum and the CLI's totals
        (the same tokens, seen twice, are never added)."""
        turns, reported = self._sum, self._reported or StreamUsage()
        self._set(
            StreamUsage(
                input_tokens=max(turns.input_tokens, reported.input_tokens),
                output_tokens=max(turns.output_tokens, reported.output_tokens),
                cache_read_tokens=max(turns.cache_read_tokens, reported.cache_read_tokens),
                turns=len(self._turns),
            )
        )

    def _set(self, usage: StreamUsage) -> None:
        if usage == self._usage:
            return
        grew = usage.total > self._usage.total
        self._usage = usage
        if grew and self.on_usage is not None:
            self.on_usage(usage)


# --------------------------------------------------------------------------- reply


def reply(run: RunResult, stream: GeminiStream) -> AgentReply:
    """The run's reply from the stream's result event; an error when there is none,
    the CLI reported one (``error``, the turn limit) or the run did not end well."""
    base = reply_from_run(run)  # the run's own failure reason, when it has one
    result = stream.result
    usage = stream._reported or stream.usage
    if result is None:
        reason = "the CLI printed no result event"
        if base.is_error and base.error_reason and not run.ok:
            reason = f"{base.error_reason.split(';')[0]}; {reason}"
        return _error_reply(reason, usage, stream, truncated=run.truncated)
    status = result.get("status")
    error = result.get("error")
    if status == "success" and run.ok:
        return AgentReply(
            text=stream.text or "",
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=0.0,
            is_error=False,
            raw_truncated=run.truncated,
            cache_read_input_tokens=usage.cache_read_tokens,
            num_turns=usage.turns or None,
            session_id=stream.session_id,
            subtype="success",
        )
    kind = str(error.get("type") or "")[:64] if isinstance(error, dict) else ""
    message = str(error.get("message") or "")[:200] if isinstance(error, dict) else ""
    if kind == "FatalTurnLimitedError" or run.exit_code == 53:
        subtype, reason = "error_max_turns", "the agent reached its turn limit"
    else:
        subtype = "error"
        reason = f"the agent reported an error ({kind or status or 'unknown'}"
        reason += f": {message})" if message else ")"
    if not run.ok:
        reason = f"the run did not complete: {run.reason}; {reason}"
    return replace(_error_reply(reason, usage, stream, truncated=run.truncated), subtype=subtype)


def _error_reply(
    reason: str, usage: StreamUsage, stream: GeminiStream, *, truncated: bool
) -> AgentReply:
    return AgentReply(
        text=f"[agent error] {reason}",
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=0.0,
        is_error=True,
        raw_truncated=truncated,
        cache_read_input_tokens=usage.cache_read_tokens,
        num_turns=usage.turns or None,
        session_id=stream.session_id,
        subtype="error",
        error_reason=reason[:300],
    )


# --------------------------------------------------------------------------- runtime


@dataclass
class _Run:
    """One run's pieces, from the worker's plan to the start of the CLI."""

    max_turns: int = DEFAULT_MAX_TURNS
    capability: Capability | None = None
    stream: GeminiStream | None = None


#: The worker asks for a run's command line, then its reader, then its HOME, all in
#: the one task that runs it (app/runner/worker.py: _plan, _run, run_confined); the
#: three calls meet here, so concurrent runs never see each other's.
_CURRENT: contextvars.ContextVar[_Run | None] = contextvars.ContextVar("gemini_run", default=None)


class GeminiRuntime:
    """The Gemini CLI (``gemini -p``): tools from the capability via HOME, stream-json."""

    name = "gemini"
    needs_price = True

    def command_line(
        self,
        argv: list[str],
        capability: Capability,
        *,
        max_turns: int,
        max_budget_usd: float | None,
    ) -> list[str]:
        # the CLI has no budget flag: the live check stops it (docs/capability.md)
        _CURRENT.set(_Run(max_turns=max_turns, capability=capability))
        return command_line(argv)

    def reader(self, capability: Capability) -> StreamReader:
        stream = GeminiStream(granted=frozenset(granted_tool_names(capability)))
        run = _CURRENT.get()
        if run is not None and run.capability == capability:
            run.stream = stream
        return stream

    def prepare_home(self, home: Path, options: Mapping[str, Any], *, model: str) -> None:
        if options:
            raise ProfileError(
                f"the gemini runtime takes no options (got {', '.join(sorted(options))})"
            )
        run = _CURRENT.get()
        if run is None or run.capability is None:
            raise ProfileError("gemini: HOME prepared for a run whose flags were never built")
        config = home / ".gemini"
        (config / "policies").mkdir(parents=True, mode=0o700)
        # the worker links a profile's login into HOME before this (app/profiles/login.py)
        login = (home / LOGIN_FILE).is_symlink()
        (config / "settings.json").write_text(
            json.dumps(settings(run.capability, max_turns=run.max_turns, login=login), indent=2)
        )
        (config / "policies" / POLICY_FILE).write_text(policy(run.capability))
        if run.stream is not None:
            run.stream.home = home
        _CURRENT.set(None)

    def reply(self, run: RunResult, reader: StreamReader) -> AgentReply:
        if isinstance(reader, GeminiStream):
            return reply(run, reader)
        return reply_from_run(run)
