"""A scripted Gemini API on loopback, for driving the real Gemini CLI.

The real CLI (``GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:PORT``, any
``GEMINI_API_KEY``) calls ``POST /v1beta/models/MODEL:streamGenerateContent?alt=sse``;
this server answers with server-sent events, one ``data:`` chunk per part and the
last one carrying ``finishReason`` and ``usageMetadata``. Which answer it gives is
decided by a script: the *n*-th model turn of a conversation (the number of
``model`` contents already in the request) gets ``script[n]``; past the end it
answers with plain text. A turn is either text or a ``functionCall``; the CLI then
runs (or refuses) the tool and calls again with a ``functionResponse``.

Every request is recorded (``requests``): the function declarations offered and
the function responses sent back, so a test can assert what the CLI was allowed
and what happened. Other calls (``generateContent``, ``countTokens``) get a short
answer. Nothing leaves loopback.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Turn:
    """One scripted model turn: ``text``, or a ``tool`` call with its ``args``."""

    text: str = ""
    tool: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 100
    output_tokens: int = 50
    cached_tokens: int = 0
    thoughts_tokens: int = 0
    #: seconds to wait before answering (a slow model)
    delay_s: float = 0.0


def text(reply: str, **usage: Any) -> Turn:
    return Turn(text=reply, **usage)


def tool(name: str, args: dict[str, Any], **usage: Any) -> Turn:
    return Turn(tool=name, args=args, **usage)


@dataclass
class Seen:
    """What one request carried."""

    path: str
    model: str
    stream: bool
    tools: list[str]
    function_responses: list[dict[str, Any]]
    model_turns: int


class GeminiServer:
    """``with GeminiServer(script) as server: server.base_url``."""

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

    def __enter__(self) -> GeminiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def turns(self) -> list[Seen]:
        """The streamed generate requests (the model turns), in order."""
        with self._lock:
            return [s for s in self.requests if s.stream]

    # ------------------------------------------------------------------ serving

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def _turn(self, model_turns: int) -> Turn:
        if model_turns < len(self.script):
            return self.script[model_turns]
        return Turn(text="done")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                self._json(404, {"error": {"code": 404, "status": "NOT_FOUND"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                path = self.path.split("?", 1)[0]
                model, _, method = path.rpartition("/")[2].partition(":")
                contents = body.get("contents") or []
                model_turns = sum(
                    1 for c in contents if isinstance(c, dict) and c.get("role") == "model"
                )
                responses = [
                    part["functionResponse"]
                    for c in contents
                    if isinstance(c, dict) and isinstance(c.get("parts"), list)
                    for part in c["parts"]
                    if isinstance(part, dict) and isinstance(part.get("functionResponse"), dict)
                ]
                declared = [
                    str(decl.get("name"))
                    for group in body.get("tools") or []
                    if isinstance(group, dict)
                    for decl in group.get("functionDeclarations") or []
                    if isinstance(decl, dict)
                ]
                seen = Seen(
                    path=path,
                    model=model,
                    stream=method == "streamGenerateContent",
                    tools=declared,
                    function_responses=responses,
                    model_turns=model_turns,
                )
                server._record(seen)
                if method == "countTokens":
                    self._json(200, {"totalTokens": 100})
                elif method == "generateContent":
                    self._json(200, _chunk(Turn(text="ok"), model, final=True))
                elif seen.stream:
                    turn = server._turn(model_turns)
                    if turn.delay_s:
                        threading.Event().wait(turn.delay_s)
                    self._stream(turn, model)
                else:
                    self._json(404, {"error": {"code": 404, "status": "NOT_FOUND"}})

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, turn: Turn, model: str) -> None:
                data = f"data: {json.dumps(_chunk(turn, model, final=True))}\r\n\r\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)  # the CLI may be stopped mid-answer

        return Handler


def _chunk(turn: Turn, model: str, *, final: bool) -> dict[str, Any]:
    if turn.tool is not None:
        part: dict[str, Any] = {"functionCall": {"name": turn.tool, "args": turn.args}}
    else:
        part = {"text": turn.text or "ok"}
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [part]}, "index": 0}
    chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
    if final:
        candidate["finishReason"] = "STOP"
        chunk["usageMetadata"] = {
            "promptTokenCount": turn.prompt_tokens + turn.cached_tokens,
            "candidatesTokenCount": turn.output_tokens,
            "cachedContentTokenCount": turn.cached_tokens,
            "thoughtsTokenCount": turn.thoughts_tokens,
            "totalTokenCount": turn.prompt_tokens
            + turn.cached_tokens
            + turn.output_tokens
            + turn.thoughts_tokens,
        }
    return chunk
