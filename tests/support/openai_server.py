"""A scripted OpenAI-style model endpoint on loopback, for driving the real Codex
CLI (Responses API) and opencode (Chat Completions) in tests.

* ``POST /v1/responses`` with ``"stream": true`` (Codex): answered with the
  Responses streaming events (``response.created``, ``response.output_item.added``,
  ``response.output_text.delta``, ``response.output_item.done``,
  ``response.completed`` with ``usage``). A tool turn is a ``function_call``
  output item; the CLI runs (or refuses) it and calls again with a
  ``function_call_output`` item in its input.
* ``POST /v1/chat/completions`` with ``"stream": true`` (opencode and any
  OpenAI-compatible client, such as a local Ollama or llama.cpp server's):
  answered with ``chat.completion.chunk`` lines, ``usage`` on the last one, then
  ``data: [DONE]``. A tool turn is a ``tool_calls`` delta.

Which answer is given is decided by a script, as in
:mod:`tests.support.model_server`: the *n*-th model turn of a conversation (the
number of assistant turns already in the request) gets ``script[n]``; past the
end it answers with plain text. A request that offers no tools (opencode's
session-title call) gets a short title and does not consume the script.

Every request is recorded (``requests``): the tools offered and the tool outputs
sent back. Nothing leaves loopback.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.model_server import Turn, text, tool

__all__ = ["FREEFORM", "OpenAIServer", "Seen", "Turn", "text", "tool"]

#: ``tool(name, {FREEFORM: text})``: a call of a freeform tool (Responses API only)
FREEFORM = "__freeform__"


@dataclass
class Seen:
    """What one request carried."""

    path: str
    model: str
    stream: bool
    tools: list[str]
    #: the outputs of earlier tool calls sent back (text of each)
    tool_outputs: list[str]
    assistant_turns: int
    body: dict[str, Any] = field(repr=False, default_factory=dict)
    at: float = 0.0


def _tool_name(spec: Any) -> str:
    if not isinstance(spec, dict):
        return "?"
    function = spec.get("function")
    if isinstance(function, dict) and function.get("name"):
        return str(function["name"])
    return str(spec.get("name") or spec.get("type") or "?")


def _output_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(
            str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in value
        )
    return json.dumps(value)


class OpenAIServer:
    """``with OpenAIServer(script) as server: server.base_url`` (ends in ``/v1``)."""

    def __init__(self, script: list[Turn] | None = None) -> None:
        self.script: list[Turn] = list(script or [])
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> OpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def turns(self) -> list[Seen]:
        """The streamed model turns that offered tools (the agent's turns), in order."""
        with self._lock:
            return [s for s in self.requests if s.stream and s.tools]

    # ------------------------------------------------------------------ serving

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def _turn(self, assistant_turns: int) -> Turn:
        if assistant_turns < len(self.script):
            return self.script[assistant_turns]
        return Turn(text="done")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path.endswith("/models"):
                    self._json(200, {"object": "list", "data": []})
                    return
                self._json(404, {"error": {"message": "not found", "type": "not_found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                if not isinstance(body, dict):
                    body = {}
                path = self.path.split("?", 1)[0]
                if path.endswith("/responses"):
                    seen = _responses_seen(path, body)
                elif path.endswith("/chat/completions"):
                    seen = _chat_seen(path, body)
                else:
                    self._json(404, {"error": {"message": "not found", "type": "not_found"}})
                    return
                server._record(seen)
                if not seen.tools:
                    turn = Turn(text="Scripted session", input_tokens=10, output_tokens=3)
                else:
                    turn = server._turn(seen.assistant_turns)
                if turn.delay_s:
                    threading.Event().wait(turn.delay_s)
                if path.endswith("/responses"):
                    events = _response_events(turn, seen.model)
                else:
                    events = _chat_events(turn, seen.model)
                if not seen.stream:
                    self._json(200, _chat_message(turn, seen.model))
                    return
                self._sse(events)

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _sse(self, events: list[tuple[str | None, Any]]) -> None:
                chunks = b"".join(
                    (f"event: {name}\n" if name else "").encode()
                    + b"data: "
                    + (data if isinstance(data, bytes) else json.dumps(data).encode())
                    + b"\n\n"
                    for name, data in events
                )
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Content-Length", str(len(chunks)))
                self.end_headers()
                self.wfile.write(chunks)

        return Handler


# --------------------------------------------------------------------------- Responses


def _responses_seen(path: str, body: dict[str, Any]) -> Seen:
    items = body.get("input") if isinstance(body.get("input"), list) else []
    assistant_turns = 0
    outputs: list[str] = []
    last_was_call = False
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        is_call = kind in ("function_call", "custom_tool_call", "local_shell_call")
        is_reply = kind == "message" and item.get("role") == "assistant"
        # consecutive calls of one turn count once
        if is_reply or (is_call and not last_was_call):
            assistant_turns += 1
        last_was_call = is_call
        if kind in ("function_call_output", "custom_tool_call_output"):
            outputs.append(_output_text(item.get("output")))
    return Seen(
        path=path,
        model=str(body.get("model", "")),
        stream=bool(body.get("stream")),
        tools=[_tool_name(t) for t in body.get("tools") or []],
        tool_outputs=outputs,
        assistant_turns=assistant_turns,
        body=body,
        at=time.monotonic(),
    )


def _response_usage(turn: Turn) -> dict[str, Any]:
    return {
        "input_tokens": turn.input_tokens + turn.cache_read_tokens,
        "input_tokens_details": {"cached_tokens": turn.cache_read_tokens},
        "output_tokens": turn.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": turn.input_tokens + turn.cache_read_tokens + turn.output_tokens,
    }


def _response_events(turn: Turn, model: str) -> list[tuple[str | None, Any]]:
    response_id = f"resp_{uuid.uuid4().hex[:24]}"
    base = {"id": response_id, "object": "response", "model": model, "status": "in_progress"}
    events: list[tuple[str | None, Any]] = [
        ("response.created", {"type": "response.created", "response": base}),
    ]
    if turn.tool is not None:
        call_id = f"call_{uuid.uuid4().hex[:24]}"
        item: dict[str, Any] = {
            "type": "function_call",
            "id": f"fc_{uuid.uuid4().hex[:24]}",
            "call_id": call_id,
            "name": turn.tool,
            "arguments": json.dumps(turn.input),
            "status": "completed",
        }
        if FREEFORM in turn.input:
            # a freeform ("custom") tool such as Codex's apply_patch: its input is text
            item = {
                "type": "custom_tool_call",
                "id": f"ctc_{uuid.uuid4().hex[:24]}",
                "call_id": call_id,
                "name": turn.tool,
                "input": str(turn.input[FREEFORM]),
                "status": "completed",
            }
        events += [
            (
                "response.output_item.added",
                {"type": "response.output_item.added", "output_index": 0, "item": item},
            ),
            (
                "response.output_item.done",
                {"type": "response.output_item.done", "output_index": 0, "item": item},
            ),
        ]
    else:
        item_id = f"msg_{uuid.uuid4().hex[:24]}"
        started = {
            "type": "message",
            "id": item_id,
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        done = started | {
            "status": "completed",
            "content": [{"type": "output_text", "text": turn.text, "annotations": []}],
        }
        events += [
            (
                "response.output_item.added",
                {"type": "response.output_item.added", "output_index": 0, "item": started},
            ),
            (
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "item_id": item_id,
                    "output_index": 0,
                    "content_index": 0,
                    "delta": turn.text,
                },
            ),
            (
                "response.output_item.done",
                {"type": "response.output_item.done", "output_index": 0, "item": done},
            ),
        ]
        item = done
    completed = base | {"status": "completed", "output": [item], "usage": _response_usage(turn)}
    events.append(("response.completed", {"type": "response.completed", "response": completed}))
    return events


# --------------------------------------------------------------------------- Chat Completions


def _chat_seen(path: str, body: dict[str, Any]) -> Seen:
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    assistant_turns = 0
    outputs: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "assistant":
            assistant_turns += 1
        elif message.get("role") == "tool":
            outputs.append(_output_text(message.get("content")))
    return Seen(
        path=path,
        model=str(body.get("model", "")),
        stream=bool(body.get("stream")),
        tools=[_tool_name(t) for t in body.get("tools") or []],
        tool_outputs=outputs,
        assistant_turns=assistant_turns,
        body=body,
        at=time.monotonic(),
    )


def _chat_usage(turn: Turn) -> dict[str, Any]:
    prompt = turn.input_tokens + turn.cache_read_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": turn.output_tokens,
        "total_tokens": prompt + turn.output_tokens,
        "prompt_tokens_details": {"cached_tokens": turn.cache_read_tokens},
    }


def _chat_message(turn: Turn, model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": turn.text or "ok"},
                "finish_reason": "stop",
            }
        ],
        "usage": _chat_usage(turn),
    }


def _chat_events(turn: Turn, model: str) -> list[tuple[str | None, Any]]:
    chunk_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }

    events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": ""}))]
    if turn.tool is not None:
        call = {
            "index": 0,
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": turn.tool, "arguments": json.dumps(turn.input)},
        }
        events.append((None, chunk({"tool_calls": [call]})))
        finish = "tool_calls"
    else:
        events.append((None, chunk({"content": turn.text})))
        finish = "stop"
    events.append((None, chunk({}, finish)))
    last = chunk({}, None, usage=_chat_usage(turn))
    last["choices"] = []
    events.append((None, last))
    events.append((None, b"[DONE]"))
    return events
