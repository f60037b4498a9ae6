"""The real agent CLIs in the tests: their pinned versions and what is installed.

The pins live in one place, ``scripts/agent-cli-versions.env``, which
``scripts/install-test-deps.sh`` installs from the npm registry.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PINS = REPO / "scripts" / "agent-cli-versions.env"


def pinned(name: str) -> str:
    """A version pinned in scripts/agent-cli-versions.env."""
    for line in PINS.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == name:
            return value.strip()
    raise LookupError(name)


def version_of(binary: str | Path | None, *, word: int = 0) -> str | None:
    """What ``binary --version`` prints (the ``word``-th word), None when absent."""
    if binary is None:
        return None
    try:
        done = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=60
        )
    except OSError:
        return None
    words = done.stdout.split()
    return words[word] if done.returncode == 0 and words else None
