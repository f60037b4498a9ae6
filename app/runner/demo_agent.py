"""A deterministic local agent that speaks the Claude Code CLI's dialect.

Run as ``python -m app.runner.demo_agent [--model NAME] [CLAUDE FLAGS]``: reads the
prompt on stdin; with ``--output-format json`` (the default) it prints exactly one
JSON result object, the shape of ``claude -p --output-format json``; with
``stream-json`` it prints the lines Claude Code prints (``system`` init, per turn
``stream_event`` ``message_start``/``message_delta`` and an ``assistant``
message, then the ``result``). It accepts the flags the claude-code runtime
passes (``--tools``, ``--max-turns``, ...) and honours ``--tools``: a tool it is
told to ask for but was not given is listed in ``permission_denials``.
Everything in it (reply, session id, token counts, cost, duration) is a function
of the prompt and the model name, so the whole pipeline runs offline and tests
can compare exact values.

Test switches, each on its own line of the prompt:

``DEMO:fail``               exit 1 with ``is_error: true`` (subtype ``error_during_execution``)
``DEMO:garbage``            print text that is not JSON, exit 0
``DEMO:sleep=SECONDS``      sleep first (timeouts, cancellation); at most 3600
``DEMO:usage=IN:OUT``       report these token counts (quota tests)
``DEMO:flood=BYTES``        print BYTES of filler before the JSON (output caps)
``DEMO:env``                the reply lists the *names* of the environment variables
``DEMO:stderr=TEXT``        write TEXT to stderr
``DEMO:turns=N``            take N model turns (stream-json; usage split across them)
``DEMO:turn_sleep=SECONDS`` sleep between turns (live budget tests)
``DEMO:tool=NAME``          ask for tool NAME in the first turn
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_PROMPT_BYTES = 10 * 1024 * 1024
#: per million tokens, the demo's made-up prices (USD)
INPUT_PRICE_PER_MTOK = 3.0
OUTPUT_PRICE_PER_MTOK = 15.0
_SESSION_NAMESPACE = uuid.UUID("6f1c1e52-2a43-4f0e-9d8c-5b0c8f1e7a10")
_SWITCH_RE = re.compile(r"^DEMO:([a-z_]+)(?:=(.*))?$")


@dataclass
class Switches:
    fail: bool = False
    garbage: bool = False
    sleep_s: float = 0.0
    usage: tuple[int, int] | None = None
    flood_bytes: int = 0
    list_env: bool = False
    stderr: list[str] = field(default_factory=list)
    turns: int = 1
    turn_sleep_s: float = 0.0
    tool: str | None = None


def parse_switches(prompt: str) -> Switches:
    switches = Switches()
    for line in prompt.splitlines():
        match = _SWITCH_RE.match(line.strip())
        if match is None:
            continue
        name, value = match.group(1), (match.group(2) or "").strip()
        try:
            if name == "fail":
                switches.fail = True
            elif name == "garbage":
                switches.garbage = True
            elif name == "sleep":
                switches.sleep_s = min(max(float(value), 0.0), 3600.0)
            elif name == "usage":
                tokens_in, tokens_out = value.split(":", 1)
                switches.usage = (max(int(tokens_in), 0), max(int(tokens_out), 0))
            elif name == "flood":
                switches.flood_bytes = min(max(int(value), 0), 1 << 31)
            elif name == "env":
                switches.list_env = True
            elif name == "stderr":
                switches.stderr.append(value)
            elif name == "turns":
                switches.turns = min(max(int(value), 1), 100_000)
            elif name == "turn_sleep":
                switches.turn_sleep_s = min(max(float(value), 0.0), 60.0)
            elif name == "tool":
                switches.tool = value[:64] or None
        except ValueError:
            continue  # a malformed switch is ignored, like any other prompt text
    return switches


def estimate_tokens(text: str) -> int:
    """Roughly four characters a token, at least one."""
    return max(1, math.ceil(len(text) / 4))


def cost_usd(input_tokens: int, output_tokens: int) -> float:
    return round(
        input_tokens * INPUT_PRICE_PER_MTOK / 1e6 + output_tokens * OUTPUT_PRICE_PER_MTOK / 1e6,
        8,
    )


def compose_reply(prompt: str, model: str, switches: Switches) -> str:
    lines = [line for line in prompt.splitlines() if not _SWITCH_RE.match(line.strip())]
    words = sum(len(line.split()) for line in lines)
    first = next((line.strip() for line in lines if line.strip()), "")
    if len(first) > 200:
        first = first[:200] + "..."
    digest = hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    reply = (
        f"Demo agent ({model}) read {words} words in {len(lines)} lines. "
        f'First line: "{first}". Prompt digest: {digest}.'
    )
    if switches.list_env:
        reply += " Environment names: " + ", ".join(sorted(os.environ)) + "."
    return reply


def build_result(prompt: str, model: str, switches: Switches) -> dict[str, Any]:
    """The JSON object the Claude CLI prints for ``-p --output-format json``."""
    session_id = str(uuid.uuid5(_SESSION_NAMESPACE, f"{model}\n{prompt}"))
    if switches.fail:
        text = "Demo agent failure requested by DEMO:fail"
        subtype, is_error = "error_during_execution", True
    else:
        text = compose_reply(prompt, model, switches)
        subtype, is_error = "success", False
    if switches.usage is not None:
        input_tokens, output_tokens = switches.usage
    else:
        input_tokens, output_tokens = estimate_tokens(prompt), estimate_tokens(text)
    duration_ms = 40 + input_tokens // 100 + output_tokens // 10
    return {
        "type": "result",
        "subtype": subtype,
        "is_error": is_error,
        "duration_ms": duration_ms,
        "duration_api_ms": max(duration_ms - 10, 0),
        "num_turns": 1,
        "result": text,
        "session_id": session_id,
        "total_cost_usd": cost_usd(input_tokens, output_tokens),
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "server_tool_use": {"web_search_requests": 0},
            "service_tier": "standard",
        },
        "permission_denials": [],
    }


def _stream_lines(
    result: dict[str, Any], model: str, switches: Switches, tools: list[str] | None
) -> Iterator[dict[str, Any]]:
    """The stream-json lines of a run, the result object last."""
    session = result["session_id"]
    yield {
        "type": "system",
        "subtype": "init",
        "session_id": session,
        "model": model,
        "tools": tools if tools is not None else [],
        "permissionMode": "dontAsk",
    }
    usage = result["usage"]
    turns = switches.turns
    denials: list[dict[str, Any]] = []
    for index in range(turns):
        if index and switches.turn_sleep_s:
            time.sleep(switches.turn_sleep_s)
        share_in = usage["input_tokens"] // turns + (
            usage["input_tokens"] % turns if index == 0 else 0
        )
        share_out = usage["output_tokens"] // turns + (
            usage["output_tokens"] % turns if index == 0 else 0
        )
        message_id = f"msg_demo_{index}"
        start = {"input_tokens": share_in, "output_tokens": 1, "cache_read_input_tokens": 0}
        yield {
            "type": "stream_event",
            "event": {"type": "message_start", "message": {"id": message_id, "usage": start}},
            "session_id": session,
        }
        content: list[dict[str, Any]] = [{"type": "text", "text": result["result"]}]
        if index == 0 and switches.tool is not None:
            content = [{"type": "tool_use", "id": "toolu_demo", "name": switches.tool, "input": {}}]
            if tools is not None and switches.tool not in tools:
                denials.append({"tool_name": switches.tool, "tool_use_id": "toolu_demo"})
        yield {
            "type": "assistant",
            "message": {"id": message_id, "content": content, "usage": start},
            "session_id": session,
        }
        done = dict(start, output_tokens=max(share_out, 1))
        yield {
            "type": "stream_event",
            "event": {"type": "message_delta", "usage": done},
            "session_id": session,
        }
        sys.stdout.flush()
    result["num_turns"] = turns
    result["permission_denials"] = denials
    yield result


def _session_file(session_id: str) -> Path:
    """Where the demo keeps a session, as Claude Code does (~/.claude/projects/...)."""
    safe = re.sub(r"[^A-Za-z0-9-]", "", session_id)[:64] or "session"
    return Path.home() / ".claude" / "projects" / "demo" / f"{safe}.jsonl"


def _remember(session_id: str, prompt: str) -> None:
    """Append this turn to the session file (so a follow-up can resume it)."""
    try:
        path = _session_file(session_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"prompt": prompt[:2000]}) + "\n")
    except OSError:
        pass  # a read-only home: nothing to resume later


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo_agent", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--max-turns", type=int, default=1)
    parser.add_argument("--output-format", choices=("json", "stream-json"), default="json")
    parser.add_argument("--tools", default=None)
    parser.add_argument("--resume", default=None)
    args, _ = parser.parse_known_args(argv)
    tools = None if args.tools is None else [t for t in args.tools.split(",") if t]

    raw = sys.stdin.buffer.read(MAX_PROMPT_BYTES + 1)[:MAX_PROMPT_BYTES]
    prompt = raw.decode("utf-8", "replace")
    switches = parse_switches(prompt)
    for text in switches.stderr:
        sys.stderr.write(text + "\n")
    if switches.sleep_s:
        time.sleep(switches.sleep_s)
    out = sys.stdout
    if switches.flood_bytes:
        block = "demo flood " * 6000
        remaining = switches.flood_bytes
        while remaining > 0:
            piece = block[: min(remaining, len(block))]
            out.write(piece)
            remaining -= len(piece)
        out.write("\n")
    if switches.garbage:
        out.write("this is not JSON {\x00 garbage\n")
        out.flush()
        return 0
    result = build_result(prompt, args.model, switches)
    if args.resume:
        result["session_id"] = args.resume
        earlier = _session_file(args.resume)
        turns = len(earlier.read_text().splitlines()) if earlier.is_file() else 0
        result["result"] = f"(continuing session {args.resume} after {turns} turn(s)) " + str(
            result["result"]
        )
    if args.output_format == "stream-json":
        _remember(str(result["session_id"]), prompt)
        for line in _stream_lines(result, args.model, switches, tools):
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            out.flush()
        return 1 if result["is_error"] else 0
    out.write(json.dumps(result, ensure_ascii=False) + "\n")
    out.flush()
    return 1 if result["is_error"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
