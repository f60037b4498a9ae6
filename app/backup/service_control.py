"""Stopping and starting the service around a restore, when systemd runs it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


class ServiceControl:
    def __init__(self, unit: str | None) -> None:
        self.unit = unit
        self._systemctl = shutil.which("systemctl")
        self.available = (
            unit is not None
            and self._systemctl is not None
            and Path("/run/systemd/system").exists()
        )

    def _run(self, *args: str) -> int:
        assert self._systemctl is not None and self.unit is not None
        return subprocess.run(
            [self._systemctl, *args, self.unit], capture_output=True, timeout=60, check=False
        ).returncode

    def stop_if_running(self) -> bool:
        if not self.available or self._run("is-active", "--quiet") != 0:
            return False
        return self._run("stop") == 0

    def start(self) -> None:
        if self.available:
            self._run("start")
