"""The OpenAI Codex CLI runtime: capability to command line, its stream read live.

Command line (docs/capability.md, "Capability to command line (Codex)")::

    <program> exec --json --skip-git-repo-check --color never --ignore-rules
      --sandbox read-only|danger-full-access -c approval_policy="never"
      -c web_search="disabled"|"live" -c sandbox_workspace_write.network_access=false
      [--disable shell_tool --disable unified_exec]  (no shell)
      --disable multi_agent --disable goals ...      (never granted)
      <profile argv[1:]> -

The prompt comes on stdin (``-``). ``approval_policy = "never"``: nothing waits
for a person who is not there. A run without the shell has Codex's shell tools
switched off, so the model is not offered one, and no execute right from the
kernel besides the program itself (:mod:`app.runner.sandbox`); it still has
``apply_patch`` (a freeform tool) and ``view_image``. Codex's own sandbox needs
bubblewrap, which cannot build its namespaces inside Landlock, so a run with the
shell or ``write_files`` is told ``danger-full-access`` and held by the kernel
sandbox alone (the workspace writable only with ``write_files``); a run with
neither keeps Codex's ``read-only`` policy, which rejects every patch.

The provider is configuration, not a flag: :meth:`CodexRuntime.prepare_home`
writes ``config.toml`` into ``$HOME/.codex`` (CODEX_HOME; HOME is the run's fresh
directory under the state directory, never ``/tmp``, where Codex refuses to put
its helpers) from the profile's ``options``: ``provider`` (an id),
``base_url``, ``env_key`` (the variable holding the key, which the profile's
``env_allow`` must pass), ``wire_api`` (``responses``). No options: Codex's own
OpenAI provider with ``OPENAI_API_KEY``.

Usage: ``codex exec --json`` prints ``turn.completed`` with usage once, when the
whole prompt is done; the live figures come from the session file Codex writes
into CODEX_HOME while it runs (``token_usage_record`` per model response,
``token_count`` with the thread's totals), read by :class:`CodexStream` each time
stdout moves. Codex reports no cost: the price table gives it (``needs_price``).
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.capability.model import Capability, Tool
from app.profiles.profiles import ProfileError
from app.profiles.runtime_options import check_options
from app.runner.output import AgentReply
from app.runner.process import RunResult
from app.runner.runtime import (
    LineSplitter,
    StreamReader,
    StreamUsage,
    stream_reply,
    token_count,
    tool_names,
)

#: our tools to the function names Codex offers the model
TOOL_NAMES: dict[Tool, tuple[str, ...]] = {
    Tool.READ_FILES: ("view_image", "read_file", "list_dir", "grep_files"),
    Tool.WRITE_FILES: ("apply_patch",),
    Tool.WEB_FETCH: (),
    Tool.WEB_SEARCH: ("web_search",),
    Tool.SHELL: ("exec_command", "write_stdin", "shell", "shell_command", "local_shell"),
}
#: Codex features that start other agents, reach outside the run or keep state
#: across runs: switched off in every run (``--disable``), and a call to one of
#: their tools counts as denied
DISABLED_FEATURES: tuple[str, ...] = (
    "multi_agent",
    "multi_agent_v2",
    "goals",
    "apps",
    "plugins",
    "remote_plugin",
    "hooks",
    "memories",
    "image_generation",
    "computer_use",
    "browser_use",
    "browser_use_external",
    "in_app_browser",
    "skill_mcp_dependency_install",
    "tool_suggest",
)
#: features that give the model a shell: off in a run without the shell
SHELL_FEATURES: tuple[str, ...] = ("shell_tool", "unified_exec")
ALWAYS_DENIED: tuple[str, ...] = (
    "spawn_agent",
    "send_input",
    "wait_agent",
    "close_agent",
    "resume_agent",
    "multi_agent_v1",
    "create_goal",
    "update_goal",
    "image_generation",
)
#: what Codex answers the model for a call its sandbox or approval policy refused
REFUSED_MARKER = "rejected by user approval settings"
#: a longer line is skipped, not buffered
_MAX_TEXT_CHARS = 200_000
#: the session file is read at most this often, this much at a time
_POLL_INTERVAL_S = 0.02
_MAX_READ_BYTES = 4 * 1024 * 1024
_MAX_SCAN_ENTRIES = 500


def granted_tool_names(capability: Capability) -> list[str]:
    return tool_names(capability, TOOL_NAMES)


def refused_tool_names(capability: Capability) -> frozenset[str]:
    """Function names that, asked for in this run, are a denied tool."""
    granted = set(granted_tool_names(capability))
    mapped = {n for tool in Tool for n in TOOL_NAMES[tool] if n not in granted}
    return frozenset(mapped | set(ALWAYS_DENIED))


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def command_line(base_argv: list[str], capability: Capability) -> list[str]:
    """The profile's argv with the flags that give the run exactly ``capability``."""
    # Codex's own sandbox needs bubblewrap's namespaces, which a process confined by
    # Landlock cannot create (its commands fail with "error building bubblewrap
    # command", its patches with "Failed to write file"): a run with the shell or
    # write_files is held by the run's kernel sandbox alone (workspace writable only
    # with write_files, no /tmp, no state directory); a run with neither keeps
    # Codex's read-only policy, which rejects every patch
    sandbox = "danger-full-access" if capability.shell or capability.write else "read-only"
    web = "live" if Tool.WEB_SEARCH in capability.tools else "disabled"
    argv = [
        base_argv[0],
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--color",
        "never",
        "--ignore-rules",
        "--sandbox",
        sandbox,
        "-c",
        'approval_policy="never"',
        "-c",
        f"web_search={_toml_str(web)}",
        "-c",
        "sandbox_workspace_write.network_access=false",
    ]
    disabled = list(DISABLED_FEATURES)
    if not capability.shell:
        disabled += SHELL_FEATURES
    for feature in disabled:
        argv += ["--disable", feature]
    return [*argv, *base_argv[1:], "-"]


def config_toml(options: Mapping[str, Any], *, model: str) -> str:
    """CODEX_HOME/config.toml for these profile options; raises ProfileError."""
    try:
        checked = check_options("codex", options)
    except ValueError as exc:
        raise ProfileError(f"codex: {exc}") from None
    lines = [f"model = {_toml_str(model)}", "[history]", 'persistence = "none"']
    provider = checked.get("provider")
    if provider is None:
        return "\n".join(lines) + "\n"
    base_url = checked["base_url"]
    env_key = checked.get("env_key", "OPENAI_API_KEY")
    wire_api = checked.get("wire_api", "responses")
    head = [f"model_provider = {_toml_str(provider)}", *lines[:1]]
    table = [
        f"[model_providers.{provider}]",
        f"name = {_toml_str(provider)}",
        f"base_url = {_toml_str(base_url)}",
        f"env_key = {_toml_str(env_key)}",
        f"wire_api = {_toml_str(str(wire_api))}",
    ]
    return "\n".join([*head, *table, *lines[1:]]) + "\n"


# --------------------------------------------------------------------------- stream


def _split(usage: Any) -> tuple[int, int, int, int] | None:
    """(uncached input, output, cache write, cache read) of a Codex usage object.
    OpenAI's input count includes the cached tokens; reasoning is part of output."""
    if not isinstance(usage, dict):
        return None
    total_in = token_count(usage.get("input_tokens"))
    cached = token_count(usage.get("cached_input_tokens"))
    written = token_count(usage.get("cache_write_input_tokens"))
    output = max(
        token_count(usage.get("output_tokens")), token_count(usage.get("reasoning_output_tokens"))
    )
    return (max(0, total_in - cached - written), output, written, cached)


def _add(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])


def _max(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return (max(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


_ZERO = (0, 0, 0, 0)


def _load(line: bytes) -> dict[str, Any] | None:
    stripped = line.strip()
    if not stripped.startswith(b"{"):
        return None
    try:
        obj = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


@dataclass
class CodexStream:
    """Reads ``codex exec --json`` output incrementally, and the session file
    Codex writes in the run's HOME for the usage of each model response.

    ``feed`` takes whatever bytes arrived (any split) and returns them all (every
    line is worth keeping: Codex prints no token-by-token events). ``on_usage`` is
    called synchronously each time the usage grew. Never raises on hostile input.
    """

    #: function names that are a denied tool when the model asks for them
    refused: frozenset[str] = frozenset()
    on_usage: Callable[[StreamUsage], None] | None = None
    session_id: str | None = None
    denied: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    #: the last agent message (the reply)
    text: str | None = None
    completed: bool = False
    failed: bool = False
    error: str | None = None
    lines: int = 0
    skipped: int = 0
    _stdout: LineSplitter = field(default_factory=LineSplitter)
    _turns: tuple[int, int, int, int] = _ZERO
    _thread: tuple[int, int, int, int] = _ZERO
    _responses: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    _calls: dict[str, str] = field(default_factory=dict)
    _usage: StreamUsage = field(default_factory=StreamUsage)
    _home: Path | None = None
    _rollout: Path | None = None
    _offset: int = 0
    _file: LineSplitter = field(default_factory=LineSplitter)
    _polled: float = 0.0

    @property
    def usage(self) -> StreamUsage:
        return self._usage

    def watch_home(self, home: Path) -> None:
        """The run's HOME: Codex's session file is read from ``home/.codex``."""
        self._home = home

    def feed(self, data: bytes) -> bytes:
        for line in self._stdout.split(data):
            self._line(line)
        self.poll()
        return data

    def close(self) -> bytes:
        last = self._stdout.rest()
        if last:
            self._line(last)
        self.poll(force=True)
        return b""

    # ----------------------------------------------------------------- stdout

    def _line(self, line: bytes) -> None:
        self.lines += 1
        obj = _load(line)
        if obj is None:
            if line.strip():
                self.skipped += 1
            return
        kind = obj.get("type")
        if kind == "thread.started":
            thread = obj.get("thread_id")
            if isinstance(thread, str) and self.session_id is None:
                self.session_id = thread[:128]
        elif kind in ("item.started", "item.updated", "item.completed"):
            self._item(obj.get("item"), done=kind == "item.completed")
        elif kind == "turn.completed":
            self.completed = True
            split = _split(obj.get("usage"))
            if split is not None:
                self._turns = _add(self._turns, split)
                self._changed()
        elif kind == "turn.failed":
            self.failed = True
            error = obj.get("error")
            message = error.get("message") if isinstance(error, dict) else None
            self.error = str(message or "the turn failed")[:300]
            split = _split(obj.get("usage"))
            if split is not None:
                self._turns = _add(self._turns, split)
                self._changed()
        elif kind == "error":
            self.error = str(obj.get("message") or "error")[:300]

    def _item(self, item: Any, *, done: bool) -> None:
        if not isinstance(item, dict):
            return
        kind = item.get("type")
        status = item.get("status")
        if kind == "agent_message" and done and isinstance(item.get("text"), str):
            self.text = item["text"][:_MAX_TEXT_CHARS]
        elif kind == "command_execution":
            self._asked("exec_command")
            if status == "declined":
                self._deny("exec_command")
        elif kind == "file_change":
            self._asked("apply_patch")
            if status == "declined":
                self._deny("apply_patch")
        elif kind == "web_search":
            self._asked("web_search")
        elif kind == "mcp_tool_call":
            name = f"mcp:{str(item.get('server') or '?')[:32]}/{str(item.get('tool') or '?')[:32]}"
            self._asked(name)
            self._deny(name)  # no MCP server is ever configured

    def _asked(self, name: str) -> None:
        if name not in self.requested and len(self.requested) < 100:
            self.requested.append(name)
        if name in self.refused:
            self._deny(name)

    def _deny(self, name: str) -> None:
        if name not in self.denied and len(self.denied) < 100:
            self.denied.append(name)

    # ----------------------------------------------------------------- session file

    def poll(self, *, force: bool = False) -> None:
        """Read what Codex added to its session file (bounded; never blocks)."""
        if self._home is None or self.session_id is None:
            return
        now = time.monotonic()
        if not force and now - self._polled < _POLL_INTERVAL_S:
            return
        self._polled = now
        try:
            if self._rollout is None:
                self._rollout = self._find_rollout()
                if self._rollout is None:
                    return
            data = self._read_new()
        except OSError:
            return
        for line in self._file.split(data):
            self._record(line)

    def _find_rollout(self) -> Path | None:
        """``~/.codex/sessions/Y/M/D/rollout-*-<thread>.jsonl``, without following
        links and looking at a bounded number of entries."""
        assert self._home is not None and self.session_id is not None
        suffix = f"-{self.session_id}.jsonl"
        folders = [self._home / ".codex" / "sessions"]
        seen = 0
        for _depth in range(4):
            found: list[Path] = []
            for folder in folders:
                try:
                    entries = os.scandir(folder)
                except OSError:
                    continue
                with entries:
                    for entry in entries:
                        seen += 1
                        if seen > _MAX_SCAN_ENTRIES:
                            return None
                        if entry.is_dir(follow_symlinks=False):
                            found.append(Path(entry.path))
                        elif entry.name.startswith("rollout-") and entry.name.endswith(suffix):
                            return Path(entry.path)
            folders = found
        return None

    def _read_new(self) -> bytes:
        assert self._rollout is not None
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self._rollout, flags)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return b""
            os.lseek(fd, self._offset, os.SEEK_SET)
            data = os.read(fd, _MAX_READ_BYTES)
        finally:
            os.close(fd)
        self._offset += len(data)
        return data

    def _record(self, line: bytes) -> None:
        if b'"token_' not in line and b'"response_item"' not in line:
            return
        obj = _load(line)
        if obj is None:
            return
        payload = obj.get("payload")
        if not isinstance(payload, dict):
            return
        kind = obj.get("type")
        if kind == "token_usage_record":
            response = str(payload.get("response_id") or f"r{len(self._responses)}")[:128]
            split = _split(payload.get("usage"))
            if split is not None and len(self._responses) < 100_000:
                self._responses[response] = _max(self._responses.get(response, _ZERO), split)
            thread = _split(payload.get("thread_token_usage"))
            if thread is not None:
                self._thread = _max(self._thread, thread)
            self._changed()
        elif kind == "event_msg" and payload.get("type") == "token_count":
            info = payload.get("info")
            if isinstance(info, dict):
                thread = _split(info.get("total_token_usage"))
                if thread is not None:
                    self._thread = _max(self._thread, thread)
                    self._changed()
        elif kind == "response_item" and payload.get("type") in (
            "function_call",
            "custom_tool_call",
            "local_shell_call",
        ):
            name = str(payload.get("name") or payload.get("type") or "?")[:64]
            self._asked(name)
            call = payload.get("call_id")
            if isinstance(call, str) and len(self._calls) < 10_000:
                self._calls[call[:128]] = name
        elif kind == "response_item" and payload.get("type") in (
            "function_call_output",
            "custom_tool_call_output",
        ):
            # Codex refused the call itself (its approval policy never asks)
            output = payload.get("output")
            text = output if isinstance(output, str) else json.dumps(output)[:4096]
            if REFUSED_MARKER in text[:4096]:
                call = payload.get("call_id")
                self._deny(self._calls.get(call, "?") if isinstance(call, str) else "?")

    def _changed(self) -> None:
        summed = _ZERO
        for split in self._responses.values():
            summed = _add(summed, split)
        best = _max(_max(summed, self._thread), self._turns)
        new = StreamUsage(
            input_tokens=best[0],
            output_tokens=best[1],
            cache_write_tokens=best[2],
            cache_read_tokens=best[3],
            turns=max(len(self._responses), self._usage.turns),
        )
        if new != self._usage:
            self._usage = new
            if self.on_usage is not None:
                self.on_usage(new)


def reply_of(run: RunResult, stream: CodexStream) -> AgentReply:
    """The run's reply from what the stream saw. Never raises."""
    problem: str | None = None
    if stream.failed:
        problem = f"the agent reported an error (turn.failed: {stream.error})"
    elif not stream.completed:
        problem = "the agent ended without completing its turn"
        if stream.error:
            problem += f" ({stream.error})"
    return stream_reply(
        run,
        text=stream.text,
        usage=stream.usage,
        cost_usd=0.0,
        session_id=stream.session_id,
        problem=problem,
    )


class CodexRuntime:
    """The Codex CLI (``codex exec --json``): sandbox and tools from the capability."""

    name = "codex"
    needs_price = True

    def command_line(
        self,
        argv: list[str],
        capability: Capability,
        *,
        max_turns: int,
        max_budget_usd: float | None,
    ) -> list[str]:
        # Codex has no turn or budget flag: the live budget stops it (docs/capability.md)
        return command_line(argv, capability)

    def prepare_home(self, home: Path, options: Mapping[str, Any], *, model: str) -> None:
        text = config_toml(options, model=model)
        if (home / ".codex" / "auth.json").is_symlink():
            # the profile's login, linked by the worker (app/profiles/login.py): read
            # from the file, never from an OS keyring
            text = 'cli_auth_credentials_store = "file"\n' + text
        codex_home = home / ".codex"
        codex_home.mkdir(mode=0o700, exist_ok=True)
        (codex_home / "config.toml").write_text(text, encoding="utf-8")

    def reader(self, capability: Capability) -> StreamReader:
        return CodexStream(refused=refused_tool_names(capability))

    def reply(self, run: RunResult, reader: StreamReader) -> AgentReply:
        if not isinstance(reader, CodexStream):
            raise TypeError("the codex runtime reads its own stream")
        return reply_of(run, reader)
