"""Running the API under uvicorn with systemd integration and the F2 listen rule."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
from pathlib import Path
from types import FrameType

import uvicorn
from starlette.datastructures import State

from app.core.settings import Settings
from app.core.systemd import Notifier, wait_until, watchdog_interval_s, watchdog_loop
from app.health.probes import database_ok

log = logging.getLogger("mission_control.serve")


class ListenRefused(RuntimeError):
    """The requested listen address would expose the API unsafely."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(settings: Settings) -> str:
    """Describe the listen address, or refuse a non-loopback one without a proxy (F2)."""
    if settings.listen_uds is not None:
        return f"unix:{settings.listen_uds}"
    if is_loopback(settings.host):
        return f"http://{settings.host}:{settings.port}"
    if not settings.behind_proxy:
        raise ListenRefused(
            f"refusing to listen on {settings.host}: only loopback or a unix socket is allowed"
            " unless a TLS-terminating proxy fronts the service (--behind-proxy or"
            " MC_BEHIND_PROXY=true)"
        )
    if not settings.trusted_proxies:
        raise ListenRefused(
            f"refusing to listen on {settings.host} behind a proxy without MC_TRUSTED_PROXIES:"
            " name the proxy's address so forwarded headers are trusted only from it"
        )
    return f"http://{settings.host}:{settings.port} (behind proxy)"


class _Server(uvicorn.Server):
    """uvicorn server that tells systemd it is stopping as soon as a signal arrives."""

    notifier: Notifier
    app_state: State

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.notifier.stopping()
        self.app_state.shutting_down = True  # live streams end at once
        if sig == signal.SIGTERM:
            # systemd's normal stop: drain, then exit 0 (a second SIGTERM forces it).
            self.force_exit = self.should_exit
            self.should_exit = True
            return
        super().handle_exit(sig, frame)


def build_server(settings: Settings) -> tuple[_Server, Notifier]:
    from app.main import create_app

    app = create_app(settings)
    kwargs: dict[str, object] = {}
    if settings.listen_uds is not None:
        Path(settings.listen_uds).parent.mkdir(parents=True, exist_ok=True)
        kwargs["uds"] = str(settings.listen_uds)
    else:
        kwargs["host"] = settings.host
        kwargs["port"] = settings.port
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        http="httptools",
        loop="asyncio",
        lifespan="on",
        timeout_graceful_shutdown=10,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=16 * 1024,
        **kwargs,  # type: ignore[arg-type]
    )
    server = _Server(config)
    notifier = Notifier()
    server.notifier = notifier
    server.app_state = app.state
    return server, notifier


async def run_server(server: _Server, notifier: Notifier, where: str) -> None:
    serving = asyncio.create_task(server.serve(), name="uvicorn")
    started = asyncio.create_task(wait_until(lambda: server.started or serving.done()))
    await started
    helpers: list[asyncio.Task[None]] = []
    if server.started:
        notifier.ready(f"serving on {where}")
        log.info("ready", extra={"listen": where})
        interval = watchdog_interval_s()
        if interval:
            app_state = server.app_state

            async def healthy() -> bool:
                return await database_ok(app_state.context.db, timeout_s=interval / 2)

            helpers.append(asyncio.create_task(watchdog_loop(notifier, interval, healthy)))
    try:
        await serving
    finally:
        for helper in helpers:
            helper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await helper
        notifier.stopping()
