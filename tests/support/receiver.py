"""A notification receiver on loopback: what apprise's ``json://`` sends lands here.

``status`` sets the answer (500: the service refuses); ``stop()`` and
``start()`` take it off and back on the same port (a dead endpoint); clearing
``hold`` keeps each request waiting for an answer until it is set again (a
service that hangs)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_PATH = "hook-s3cr3t-4f9aQ"


class Receiver:
    def __init__(self, port: int = 0) -> None:
        self.status = 200
        self.received: list[dict[str, Any]] = []
        self.port = port
        self.hold = threading.Event()
        self.hold.set()
        self._server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        """An apprise URL whose path is the secret (like an ntfy topic)."""
        return f"json://127.0.0.1:{self.port}/{SECRET_PATH}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                receiver.hold.wait(30)
                if receiver.status == 200:
                    receiver.received.append({"path": self.path, **json.loads(body)})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def titles(self) -> list[str]:
        return [str(item.get("title")) for item in self.received]
