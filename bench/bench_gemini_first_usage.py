"""Gemini CLI: time from spawn to the first usage the live budget check sees.

The pinned Gemini CLI against the scripted Gemini API on loopback
(tests/support/gemini_server.py), with the settings and policy the runtime writes
(app/runner/gemini.py) for a read-only run. Its first model turn asks for a file,
so the usage of that turn reaches the reader from the CLI's session file (stdout
carries no token counts before the result). The reader is fed the CLI's stdout as
it arrives, as the worker feeds it. 20 runs; median and worst.

Plain lines out, no asserts. Loopback only; bounded counts.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.capability.model import Capability, Tool  # noqa: E402
from app.runner import gemini  # noqa: E402
from app.runner.runtime import StreamUsage  # noqa: E402
from tests.support.gemini_server import GeminiServer, text, tool  # noqa: E402

RUNS = 20
CAPABILITY = Capability(tools=frozenset({Tool.READ_FILES}), shell=False, write=False, basis="")


def one_run(binary: str, base_url: str) -> float | None:
    """Seconds from spawn to the first usage seen, None when none was seen."""
    folder = Path(tempfile.mkdtemp(prefix="mc-bench-gemini-"))
    try:
        home, work = folder / "home", folder / "workspace"
        (home / ".gemini" / "policies").mkdir(parents=True)
        work.mkdir()
        (work / "a.txt").write_text("a\n")
        settings = gemini.settings(CAPABILITY, max_turns=10)
        (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
        (home / ".gemini" / "policies" / gemini.POLICY_FILE).write_text(gemini.policy(CAPABILITY))
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "GEMINI_API_KEY": "bench-key",
            "GOOGLE_GEMINI_BASE_URL": base_url,
        }
        first: list[float] = []
        stream = gemini.GeminiStream(home=home)

        def on_usage(usage: StreamUsage) -> None:
            if not first:
                first.append(time.monotonic())

        stream.on_usage = on_usage
        argv = gemini.command_line([binary, "-m", "gemini-2.5-pro"])
        started = time.monotonic()
        child = subprocess.Popen(
            argv,
            cwd=work,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(b"Please do it.")
        child.stdin.close()
        os.set_blocking(child.stdout.fileno(), False)
        with selectors.DefaultSelector() as sel:
            sel.register(child.stdout, selectors.EVENT_READ)
            deadline = started + 120
            while time.monotonic() < deadline:
                if not sel.select(timeout=1.0):
                    continue
                data = child.stdout.read(65536)
                if not data:
                    break
                stream.feed(data)
        stream.close()
        child.kill()
        child.wait()
        return first[0] - started if first else None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    binary = shutil.which("gemini")
    if binary is None:
        print("gemini is not installed (scripts/install-test-deps.sh installs it)")
        return
    script = [tool("read_file", {"file_path": "a.txt"}), text("done")]
    times: list[float] = []
    for _ in range(RUNS):
        with GeminiServer(script) as server:
            seen = one_run(binary, server.base_url)
        if seen is not None:
            times.append(seen)
    if not times:
        print("no usage seen in any run")
        return
    print(
        f"gemini spawn to first usage, {len(times)}/{RUNS} runs:"
        f" median {statistics.median(times) * 1000:.0f} ms,"
        f" worst {max(times) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
