"""Helpers of the browser tests (no fixtures here; see tests/browser/conftest.py)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "screenshots"
FIGURES = REPO / "build" / "ui-figures.json"
PASSWORD = "correct horse battery staple"
#: a GitHub token the fake agent leaks in its reply (a well-formed fake)
LEAKED = "ghp_0b2C6UXQx4skJiPGgOBGwXGSYZ5XDnWTroPa"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEP_MS = 5_000

# The fake agent: replies in the claude-json format, leaks a credential (the
# worker must redact it before storing), and floods its output when asked (the
# worker must cut it at the profile's cap and mark the cut).
AGENT = textwrap.dedent(
    f"""
    import json, sys
    prompt = sys.stdin.read()
    reply = "Done. I used the deploy token {LEAKED} to read the sources."
    sys.stdout.write(json.dumps({{
        "type": "result", "subtype": "success", "is_error": False, "result": reply,
        "session_id": "s", "num_turns": 1, "total_cost_usd": 0.0123,
        "usage": {{"input_tokens": 120, "output_tokens": 45}},
    }}) + "\\n")
    if "FLOOD" in prompt:
        sys.stdout.write(("filler line " * 20 + "\\n") * 200)
    sys.stdout.flush()
    """
)

PROFILES = textwrap.dedent(
    """
    [profiles.demo]
    # the demo agent speaks Claude Code's stream-json: its turns stream live
    runtime = "claude-code"
    price_fallback = "demo"
    argv = ["{python}", "-I", "-m", "app.runner.demo_agent", "--model", "{model}"]
    [profiles.demo.limits]
    wall_clock_seconds = 20

    [profiles.leaky]
    argv = ["{python}", "-I", "AGENT_PATH"]
    [profiles.leaky.limits]
    wall_clock_seconds = 20
    cpu_seconds = 20
    address_space_mb = 1024
    processes = 32
    open_files = 64
    stdout_cap_bytes = 4096
    term_grace_seconds = 0.2
    """
)


@dataclass
class Server:
    base: str
    root: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


def wait_healthy(base: str, serve: subprocess.Popen[bytes], deadline_s: float = 20.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if serve.poll() is not None:
            raise RuntimeError(f"missionctl serve exited with {serve.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(base + "/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        time.sleep(0.1)
    raise RuntimeError("missionctl serve did not become healthy")


class Console:
    """Every console error, page error and CSP violation, minus the refusals a
    test step provokes on purpose (which Chromium logs as failed loads)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.allowed: set[tuple[str, int]] = set()
        self.seen_allowed: list[tuple[str, int]] = []
        self.muted: list[Any] = []

    def attach(self, page: Any) -> None:
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))

    def mute(self, page: Any) -> None:
        """A page whose errors are provoked on purpose (the CSP probe)."""
        self.muted.append(page)

    def _console(self, page: Any, message: Any) -> None:
        if message.type not in ("error", "warning") or any(page is p for p in self.muted):
            return
        text = str(message.text)
        url = str((message.location or {}).get("url", ""))
        if text.startswith("Failed to load resource: the server responded with a status of "):
            status = int(text.split("status of ", 1)[1].split(" ", 1)[0])
            path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else url
            key = (path.split("?", 1)[0], status)
            if key in self.allowed:
                self.seen_allowed.append(key)
                return
        self.problems.append(f"{message.type}: {text} ({url})")

    @contextlib.contextmanager
    def expect_refusal(self, path: str, status: int) -> Iterator[None]:
        """A step that is meant to be refused by the server with ``status``."""
        self.allowed.add((path, status))
        try:
            yield
        finally:
            self.allowed.discard((path, status))

    def assert_clean(self) -> None:
        assert self.problems == [], "\n".join(self.problems)


# Reported by the page itself: the CSP's own violation event, in every document.
CSP_LISTENER = """
document.addEventListener('securitypolicyviolation', function (e) {
  console.error('securitypolicyviolation: ' + e.violatedDirective + ' '
                + (e.blockedURI || 'inline'));
});
"""


def record_figures(**values: Any) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    current: dict[str, Any] = {}
    if FIGURES.exists():
        with contextlib.suppress(ValueError):
            current = json.loads(FIGURES.read_text())
    current.update(values)
    FIGURES.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def visit(page: Any, url: str, *, attempts: int = 3) -> None:
    """``page.goto`` on a page that may reload itself meanwhile (a form's success
    reloads it, so does the live feed on its subject's event): a navigation that the
    page's own reload aborted (``net::ERR_ABORTED``) is made again once it settles."""
    for attempt in range(1, attempts + 1):
        try:
            page.goto(url)
            return
        except Exception as exc:  # playwright's Error; any other failure is raised as is
            if "ERR_ABORTED" not in str(exc) or attempt == attempts:
                raise
            page.wait_for_load_state()
