"""``missionctl serve`` plus two endpoints that exist only for the benchmarks.

* ``/bench/bare``: a raw ASGI callable placed in front of the application in the
  same server process (no FastAPI, no middleware, no auth, no database): the
  ceiling of this server on this machine;
* ``/bench/route``: a plain FastAPI route inside the real application: through
  the same edge middleware as every route, but no auth and no database.

Everything else is the real product, served exactly as ``missionctl serve``
serves it (uvicorn, the bounded protocol, lifespan, sd_notify READY).

    python bench/_serve_with_bare.py serve --port 8099
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from starlette.types import Receive, Scope, Send  # noqa: E402

from app import cli  # noqa: E402
from app import main as app_main  # noqa: E402

BODY = b'{"ok":true}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


class WithBare:
    """The application with ``/bench/bare`` answered before it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state  # serve.py reads the application's state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/bench/bare":
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await send({"type": "http.response.body", "body": BODY})
            return
        await self.app(scope, receive, send)


_original = app_main.create_app


def create_app(settings: Any = None) -> Any:
    app = _original(settings)

    @app.get("/bench/route", include_in_schema=False)
    async def bench_route() -> dict[str, bool]:
        return {"ok": True}

    return WithBare(app)


if __name__ == "__main__":
    app_main.create_app = create_app  # type: ignore[assignment]
    arguments = sys.argv[1:]
    raise SystemExit(cli.main(arguments if arguments[:1] == ["serve"] else ["serve", *arguments]))
