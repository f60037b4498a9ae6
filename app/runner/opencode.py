"""The opencode runtime: capability to permission config, its stream read live.

Command line (docs/capability.md, "Capability to command line (opencode)")::

    <program> run --format json --agent mc-<tools> <profile argv[1:]>

The prompt comes on stdin. What the agent may do is opencode's ``permission``
configuration, written by :meth:`OpencodeRuntime.prepare_home` into the run's
``$HOME/.config/opencode/opencode.json``: ``"*": "deny"`` everywhere, and one
agent per set of tools (``--agent`` picks the run's) allowing the granted tools
only (``read``/``glob``/``grep``/``list`` for ``read_files``,
``edit`` for ``write_files``, ``bash`` for the shell, ``webfetch`` and
``websearch``); a denied tool is not offered to the model, and one it asks for
anyway fails. Nothing is ever ``ask`` (no person is there to answer). The runtime
also sets ``OPENCODE_DISABLE_PROJECT_CONFIG`` (:data:`FIXED_ENV`): an agent that
writes an ``opencode.json`` into its workspace cannot give its next run a tool or
another endpoint. The kernel sandbox enforces the same capability underneath.

The provider comes from the profile's ``options``: ``provider`` (an id),
``base_url`` (an OpenAI-compatible endpoint: OpenAI, or a local Ollama or
llama.cpp server), ``env_key`` (the variable holding the key; the profile's
``env_allow`` passes it). The model is ``<provider>/<agent's model>``.

Output: ``step_start``, ``text``, ``tool_use``, ``step_finish`` lines, one
``step_finish`` per model call with ``part.tokens`` (``input``, ``output``,
``reasoning``, ``cache.read``, ``cache.write``) and ``part.cost`` (opencode's own
price, 0 for a provider it does not know: the price table gives ours).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.capability.model import Capability, Tool
from app.profiles.profiles import ProfileError
from app.profiles.runtime_options import check_options
from app.runner.codex import _load
from app.runner.output import AgentReply
from app.runner.process import RunResult
from app.runner.runtime import LineSplitter, StreamReader, StreamUsage, stream_reply, token_count

#: our tools to opencode's permission keys (the tool names the model sees)
PERMISSIONS: dict[Tool, tuple[str, ...]] = {
    Tool.READ_FILES: ("read", "glob", "grep", "list"),
    Tool.WRITE_FILES: ("edit",),
    Tool.WEB_FETCH: ("webfetch",),
    Tool.WEB_SEARCH: ("websearch",),
    Tool.SHELL: ("bash",),
}
#: tool names (as opencode reports a call) behind each permission key
TOOL_NAMES: dict[Tool, tuple[str, ...]] = {
    Tool.READ_FILES: ("read", "glob", "grep", "list"),
    Tool.WRITE_FILES: ("edit", "write", "patch", "multiedit", "apply_patch"),
    Tool.WEB_FETCH: ("webfetch",),
    Tool.WEB_SEARCH: ("websearch", "codesearch"),
    Tool.SHELL: ("bash",),
}
#: tools never granted (other agents, skills, questions to nobody)
ALWAYS_DENIED: tuple[str, ...] = ("task", "skill", "question")
#: environment every opencode run gets (merged over the profile's)
FIXED_ENV: dict[str, str] = {
    "OPENCODE_DISABLE_PROJECT_CONFIG": "1",
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_CLAUDE_CODE": "1",
    "OPENCODE_DISABLE_EXTERNAL_SKILLS": "1",
}
#: the run's npm configuration: nothing is fetched (see OpencodeRuntime.prepare_home)
NPMRC = "registry=http://127.0.0.1:9/\noffline=true\naudit=false\nfund=false\n"
_MAX_TEXT_CHARS = 200_000


def granted_tool_names(capability: Capability) -> list[str]:
    return [n for tool in Tool if tool in capability.tools for n in TOOL_NAMES[tool]]


def refused_tool_names(capability: Capability) -> frozenset[str]:
    granted = set(granted_tool_names(capability))
    mapped = {n for tool in Tool for n in TOOL_NAMES[tool] if n not in granted}
    return frozenset(mapped | set(ALWAYS_DENIED))


def permission_config(capability: Capability) -> dict[str, str]:
    """opencode's ``permission`` object: deny everything, allow what is granted."""
    rules = {"*": "deny", "external_directory": "deny", "doom_loop": "deny"}
    for tool in Tool:
        if tool in capability.tools:
            for key in PERMISSIONS[tool]:
                rules[key] = "allow"
    return rules


_LETTERS: dict[Tool, str] = {
    Tool.READ_FILES: "r",
    Tool.WRITE_FILES: "w",
    Tool.WEB_FETCH: "f",
    Tool.WEB_SEARCH: "s",
    Tool.SHELL: "x",
}


def agent_name(capability: Capability) -> str:
    """The opencode agent of this capability: ``mc-`` and one letter per tool."""
    return "mc-" + "".join(_LETTERS[tool] for tool in Tool if tool in capability.tools)


def _every_capability() -> list[Capability]:
    tools = list(Tool)
    found = []
    for mask in range(1 << len(tools)):
        chosen = frozenset(t for i, t in enumerate(tools) if mask >> i & 1)
        found.append(
            Capability(
                tools=chosen,
                shell=Tool.SHELL in chosen,
                write=Tool.WRITE_FILES in chosen,
                basis="",
            )
        )
    return found


def command_line(base_argv: list[str], capability: Capability) -> list[str]:
    return [
        base_argv[0],
        "run",
        "--format",
        "json",
        "--agent",
        agent_name(capability),
        *base_argv[1:],
    ]


def config_json(options: Mapping[str, Any], *, model: str) -> dict[str, Any]:
    """The run's opencode.json; raises ProfileError for unusable options. Every
    permission is ``deny`` but in the agents named by :func:`agent_name` (one per
    set of tools: the command line picks the run's)."""
    try:
        checked = check_options("opencode", options)
    except ValueError as exc:
        raise ProfileError(f"opencode: {exc}") from None
    provider = checked["provider"]
    base_url = checked["base_url"]
    env_key = checked.get("env_key", "OPENAI_API_KEY")
    config: dict[str, Any] = {
        "$schema": "https://opencode.ai/config.json",
        "model": f"{provider}/{model}",
        "small_model": f"{provider}/{model}",
        "provider": {
            provider: {
                "npm": "@ai-sdk/openai-compatible",
                "name": provider,
                "options": {"baseURL": base_url, "apiKey": f"{{env:{env_key}}}"},
                "models": {model: {"name": model}},
            }
        },
        "autoupdate": False,
        "share": "disabled",
        "snapshot": False,
        "lsp": False,
        "formatter": False,
        "plugin": [],
        "mcp": {},
        "permission": {"*": "deny"},
        "agent": {
            agent_name(capability): {
                "description": "a Mission Control run with these tools",
                "mode": "primary",
                "permission": permission_config(capability),
            }
            for capability in _every_capability()
        },
    }
    return config


# --------------------------------------------------------------------------- stream


@dataclass
class OpencodeStream:
    """Reads ``opencode run --format json`` output incrementally: each
    ``step_finish`` is one model call's usage (``on_usage`` is called at once)."""

    refused: frozenset[str] = frozenset()
    on_usage: Callable[[StreamUsage], None] | None = None
    session_id: str | None = None
    denied: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    #: the text of the last step that printed any (the reply)
    text: str | None = None
    finished: bool = False
    #: the last step's finish reason (``stop``, ``tool-calls``, ``length``, ...)
    reason: str | None = None
    error: str | None = None
    cost_usd: float = 0.0
    lines: int = 0
    skipped: int = 0
    _stdout: LineSplitter = field(default_factory=LineSplitter)
    _steps: set[str] = field(default_factory=set)
    _step_text: list[str] = field(default_factory=list)
    _usage: StreamUsage = field(default_factory=StreamUsage)

    @property
    def usage(self) -> StreamUsage:
        return self._usage

    def feed(self, data: bytes) -> bytes:
        for line in self._stdout.split(data):
            self._line(line)
        return data

    def close(self) -> bytes:
        last = self._stdout.rest()
        if last:
            self._line(last)
        return b""

    def _line(self, line: bytes) -> None:
        self.lines += 1
        obj = _load(line)
        if obj is None:
            if line.strip():
                self.skipped += 1
            return
        session = obj.get("sessionID")
        if isinstance(session, str) and self.session_id is None:
            self.session_id = session[:128]
        part = obj.get("part")
        part = part if isinstance(part, dict) else {}
        kind = obj.get("type")
        if kind == "step_start":
            self._step_text = []
        elif kind == "text":
            if isinstance(part.get("text"), str) and len(self._step_text) < 1000:
                self._step_text.append(part["text"])
                self.text = "".join(self._step_text)[:_MAX_TEXT_CHARS]
        elif kind == "tool_use":
            self._tool(part)
        elif kind == "step_finish":
            self._finish(part)
        elif kind == "error":
            error = obj.get("error")
            if isinstance(error, dict):
                data = error.get("data")
                message = data.get("message") if isinstance(data, dict) else None
                self.error = str(message or error.get("name") or "error")[:300]
            else:
                self.error = str(error or "error")[:300]

    def _tool(self, part: dict[str, Any]) -> None:
        name = str(part.get("tool") or "?")[:64]
        if name not in self.requested and len(self.requested) < 100:
            self.requested.append(name)
        state = part.get("state")
        error = state.get("error") if isinstance(state, dict) else None
        rejected = isinstance(error, str) and (
            "unavailable tool" in error or "permission" in error.lower() or "rejected" in error
        )
        if name in self.refused or rejected:
            self._deny(name)

    def _deny(self, name: str) -> None:
        if name not in self.denied and len(self.denied) < 100:
            self.denied.append(name)

    def _finish(self, part: dict[str, Any]) -> None:
        self.finished = True
        reason = part.get("reason")
        self.reason = str(reason)[:64] if isinstance(reason, str) else None
        step = str(part.get("id") or part.get("messageID") or f"step-{len(self._steps)}")[:128]
        cost = part.get("cost")
        if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost):
            self.cost_usd = min(self.cost_usd + max(0.0, float(cost)), 100_000.0)
        tokens = part.get("tokens")
        if step in self._steps or not isinstance(tokens, dict) or len(self._steps) > 100_000:
            return
        self._steps.add(step)
        cache = tokens.get("cache")
        cache = cache if isinstance(cache, dict) else {}
        old = self._usage
        # opencode's ``input`` excludes the cached tokens; reasoning is billed as output
        self._usage = StreamUsage(
            input_tokens=old.input_tokens + token_count(tokens.get("input")),
            output_tokens=old.output_tokens
            + token_count(tokens.get("output"))
            + token_count(tokens.get("reasoning")),
            cache_write_tokens=old.cache_write_tokens + token_count(cache.get("write")),
            cache_read_tokens=old.cache_read_tokens + token_count(cache.get("read")),
            turns=len(self._steps),
        )
        if self._usage != old and self.on_usage is not None:
            self.on_usage(self._usage)


def reply_of(run: RunResult, stream: OpencodeStream) -> AgentReply:
    problem: str | None = None
    if stream.error:
        problem = f"the agent reported an error ({stream.error})"
    elif not stream.finished:
        problem = "the agent ended before finishing a step"
    return stream_reply(
        run,
        text=stream.text,
        usage=stream.usage,
        cost_usd=stream.cost_usd,
        session_id=stream.session_id,
        problem=problem,
    )


class OpencodeRuntime:
    """opencode (``opencode run --format json``): permissions from the capability."""

    name = "opencode"
    needs_price = True
    fixed_env = FIXED_ENV

    def command_line(
        self,
        argv: list[str],
        capability: Capability,
        *,
        max_turns: int,
        max_budget_usd: float | None,
    ) -> list[str]:
        # opencode has no turn or budget flag: the live budget stops it
        return command_line(argv, capability)

    def prepare_home(self, home: Path, options: Mapping[str, Any], *, model: str) -> None:
        write_config(home, config_json(options, model=model))
        # at start opencode installs packages for its config directory from the npm
        # registry (measured: @opencode-ai/plugin and its dependencies, unpinned);
        # a run never fetches code: the registry is a closed port on loopback
        (home / ".npmrc").write_text(NPMRC, encoding="utf-8")

    def reader(self, capability: Capability) -> StreamReader:
        return OpencodeStream(refused=refused_tool_names(capability))

    def reply(self, run: RunResult, reader: StreamReader) -> AgentReply:
        if not isinstance(reader, OpencodeStream):
            raise TypeError("the opencode runtime reads its own stream")
        return reply_of(run, reader)


def write_config(home: Path, config: dict[str, Any]) -> None:
    folder = home / ".config" / "opencode"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    (folder / "opencode.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
