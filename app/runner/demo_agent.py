"""A deterministic local agent that speaks the Claude CLI ``--output-format json`` format.

Run as ``python -m app.runner.demo_agent [--model NAME] [--max-turns N]``: reads the
prompt on stdin and prints exactly one JSON result object, the same shape as
``claude -p --output-format json``. Everything in it (reply, session id, token
counts, cost, duration) is a function of the prompt and the model name, so the
whole pipeline runs offline and tests can compare exact values.

Test switches, each on its own line of the prompt:

``DEMO:fail``               exit 1 with ``is_error: true`` (subtype ``error_during_execution``)
``DEMO:garbage``            print text that is not JSON, exit 0
``DEMO:sleep=SECONDS``      sleep first (timeouts, cancellation); at most 3600
``DEMO:usage=IN:OUT``       report these token counts (quota tests)
``DEMO:flood=BYTES``        print BYTES of filler before the JSON (output caps)
``DEMO:env``                the reply lists the *names* of the environment variables
``DEMO:stderr=TEXT``        write TEXT to stderr
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
from dataclasses import dataclass, field
from typing import Any

MAX_PROMPT_BYTES = 10 * 1024 * 1024
#: per million tokens, the demo's made-up prices (USD)
INPUT_PRICE_PER_MTOK = 3.0
OUTPUT_PRICE_PER_MTOK = 15.0
_SESSION_NAMESPACE = uuid.UUID("6f1c1e52-2a43-4f0e-9d8c-5b0c8f1e7a10")
_SWITCH_RE = re.compile(r"^DEMO:([a-z]+)(?:=(.*))?$")


@dataclass
class Switches:
    fail: bool = False
    garbage: bool = False
    sleep_s: float = 0.0
    usage: tuple[int, int] | None = None
    flood_bytes: int = 0
    list_env: bool = False
    stderr: list[str] = field(default_factory=list)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo_agent", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--max-turns", type=int, default=1)
    args = parser.parse_args(argv)

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
    out.write(json.dumps(result, ensure_ascii=False) + "\n")
    out.flush()
    return 1 if result["is_error"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
