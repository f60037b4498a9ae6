"""A real Mission Control (``missionctl serve`` + ``missionctl worker``) and Debian's
Chromium driven by Playwright, for the browser tests of the web UI.

No browser is downloaded: Playwright launches ``/usr/bin/chromium`` (installed by
``scripts/install-test-deps.sh``); without it the tests skip and say why.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import (
    AGENT,
    CHROMIUM,
    CHROMIUM_ARGS,
    CSP_LISTENER,
    PASSWORD,
    PROFILES,
    REPO,
    STEP_MS,
    Console,
    Server,
    wait_healthy,
)
from tests.support.cli import cli_env, free_port, missionctl


@pytest.fixture(scope="module")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """``missionctl serve`` and a worker; a module with ``UI_WORKER = False`` gets no
    worker (its tasks stay queued, so what a form stored can be read back as it was)."""
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's chromium is not installed (/usr/bin/chromium): run"
            " scripts/install-test-deps.sh as root (CI does) to run the browser tests"
        )
    root = tmp_path_factory.mktemp("ui")
    agent = root / "agents" / "leaky.py"
    agent.parent.mkdir()
    agent.write_text(AGENT)
    etc = root / "etc"
    etc.mkdir(mode=0o755)
    profiles = etc / "profiles.toml"
    profiles.write_text(PROFILES.replace("AGENT_PATH", str(agent)))
    profiles.chmod(0o644)
    # the "leaky" fake agent is a script in the test's directory, outside what the
    # agents' Landlock sandbox allows (tests/runner/test_sandbox.py tests the sandbox)
    # the UI flow starts a mission's step by hand ("Start this step as a task"):
    # the worker does not start steps by itself here (docs/missions.md)
    extra = {
        "MC_PROFILES_PATH": str(profiles),
        "MC_RUNNER_SANDBOX": "off",
        "MC_MISSIONS_RUN_STEPS": "false",
    }
    # a module's own settings for its server: UI_ENV(root) -> {"MC_...": value}
    extra.update(getattr(request.module, "UI_ENV", lambda _: {})(root))
    for name, role in (("alice", "admin"), ("bob", "operate")):
        made = missionctl(
            root, "user", "create", name, "--role", role, "--password-stdin",
            stdin=PASSWORD + "\n", **extra,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = cli_env(root, **extra)
    logs = root / "logs"
    logs.mkdir()
    started = Server(base, root)
    try:
        commands = [("serve", ["serve", "--port", str(port)])]
        if getattr(request.module, "UI_WORKER", True):
            commands.append(("worker", ["worker", "--name", "ui-tests"]))
        for name, args in commands:
            with (logs / f"{name}.log").open("wb") as log:
                started.processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "app.cli", *args],
                        cwd=REPO,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            if name == "serve":  # the server creates the database and its secrets first
                wait_healthy(base, started.processes[0])
        yield started
    finally:
        for process in started.processes:
            process.terminate()
        for process in started.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture(scope="module")
def console() -> Console:
    return Console()


@pytest.fixture(scope="module")
def browser(
    server: Server, console: Console, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            base_url=server.base,
            env={k: v for k, v in os.environ.items() if not k.startswith("MC_")},
        )
        context.set_default_timeout(STEP_MS)
        context.set_default_navigation_timeout(2 * STEP_MS)
        context.add_init_script(CSP_LISTENER)
        context.on("page", console.attach)
        for page in context.pages:
            console.attach(page)
        try:
            yield context
        finally:
            context.close()
