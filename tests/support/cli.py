"""Running ``missionctl`` as a real process for the integration tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MC_", "NOTIFY_", "WATCHDOG_"))}
    env.update(
        {
            "MC_DATABASE_PATH": str(tmp_path / "mc.db"),
            "MC_STATE_DIR": str(tmp_path / "state"),
            "MC_ENV_FILE": str(tmp_path / "no-env-file"),
        }
    )
    env.update(extra)
    return env


def missionctl(
    tmp_path: Path, *args: str, stdin: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=cli_env(tmp_path, **extra),
        timeout=60,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
