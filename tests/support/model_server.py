"""A scripted Anthropic Messages API on loopback, for driving the real Claude Code CLI.

The real CLI (``ANTHROPIC_BASE_URL=http://127.0.0.1:PORT``) calls
``POST /v1/messages`` with ``"stream": true``; this server answers with the
Messages streaming events (``message_start``, ``content_block_*``,
``message_delta`` with ``usage``, ``message_stop``). Which answer it gives is
decided by a script: the *n*-th model turn of a conversation (the number of
assistant messages already in the request) gets ``script[n]``; past the end it
answers with plain text. A turn is either text or a ``tool_use`` block; the
CLI then runs (or denies) the tool and calls again with the ``tool_result``.

Every request is recorded (``requests``): the tools offered, the tool results
sent back, so a test can assert what the CLI was allowed and what happened.
Nothing leaves loopback.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Turn:
    """One scripted model turn: ``text``, or a ``tool`` call with its ``input``."""

    text: str = ""
    tool: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    input_tokens: int = 100
    output_tokens: int = 50
    cache_read_tokens: int = 0
    #: seconds to wait before answering (a slow model)
    delay_s: float = 0.0


def text(reply: str, **usage: Any) -> Turn:
    return Turn(text=reply, **usage)


def tool(name: str, tool_input: dict[str, Any], **usage: Any) -> Turn:
    return Turn(tool=name, input=tool_input, **usage)


@dataclass
class Seen:
    """What one request carried."""

    path: str
    model: str
    stream: bool
    tools: list[str]
    tool_results: list[dict[str, Any]]
    assistant_turns: int
    system: str
    #: how the request authenticated: "bearer:<token>" or "api-key:<key>"
    auth: str = ""


class ModelServer:
    """``with ModelServer(script) as server: server.base_url``."""

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
        return f"http://{host}:{port}"

    def __enter__(self) -> ModelServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def messages(self) -> list[Seen]:
        """The streamed Messages requests (the model turns), in order."""
        with self._lock:
            return [s for s in self.requests if s.path == "/v1/messages" and s.stream]

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
                self._json(404, {"type": "error", "error": {"type": "not_found_error"}})

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                path = self.path.split("?", 1)[0]
                if path.endswith("/count_tokens"):
                    self._json(200, {"input_tokens": 100})
                    return
                if path != "/v1/messages":
                    self._json(404, {"type": "error", "error": {"type": "not_found_error"}})
                    return
                messages = body.get("messages") or []
                assistant_turns = sum(1 for m in messages if m.get("role") == "assistant")
                results = [
                    block
                    for m in messages
                    if m.get("role") == "user" and isinstance(m.get("content"), list)
                    for block in m["content"]
                    if isinstance(block, dict) and block.get("type") == "tool_result"
                ]
                system = body.get("system")
                if isinstance(system, list):
                    system = "\n".join(
                        str(b.get("text", "")) for b in system if isinstance(b, dict)
                    )
                seen = Seen(
                    path=path,
                    model=str(body.get("model", "")),
                    stream=bool(body.get("stream")),
                    tools=[str(t.get("name")) for t in body.get("tools") or []],
                    tool_results=results,
                    assistant_turns=assistant_turns,
                    system=str(system or ""),
                    auth=(
                        "bearer:" + self.headers["Authorization"].removeprefix("Bearer ")
                        if self.headers.get("Authorization")
                        else "api-key:" + str(self.headers.get("x-api-key") or "")
                    ),
                )
                server._record(seen)
                if not seen.stream:
                    self._json(200, _message(Turn(text="ok"), seen.model))
                    return
                turn = server._turn(assistant_turns)
                if turn.delay_s:
                    threading.Event().wait(turn.delay_s)
                self._stream(turn, seen.model)

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, turn: Turn, model: str) -> None:
                chunks = b"".join(
                    f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                    for name, data in _events(turn, model)
                )
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Content-Length", str(len(chunks)))
                self.end_headers()
                self.wfile.write(chunks)

        return Handler


def _usage(turn: Turn, *, output: int) -> dict[str, Any]:
    return {
        "input_tokens": turn.input_tokens,
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": turn.cache_read_tokens,
    }


def _message(turn: Turn, model: str) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": turn.text or "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": _usage(turn, output=turn.output_tokens),
    }


def _events(turn: Turn, model: str) -> list[tuple[str, dict[str, Any]]]:
    start = _message(turn, model) | {"content": [], "stop_reason": None}
    start["usage"] = _usage(turn, output=1)
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    if turn.tool is not None:
        block = {
            "type": "tool_use",
            "id": f"toolu_{uuid.uuid4().hex[:24]}",
            "name": turn.tool,
            "input": {},
        }
        delta = {"type": "input_json_delta", "partial_json": json.dumps(turn.input)}
        stop_reason = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": turn.text}
        stop_reason = "end_turn"
    events += [
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        ),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": _usage(turn, output=turn.output_tokens),
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events
