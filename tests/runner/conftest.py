"""Fixtures for the runner tests: fake agents written into tmp_path."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

FakeAgent = Callable[[str, str], list[str]]


@pytest.fixture
def fake_agent(tmp_path: Path) -> FakeAgent:
    """Write ``code`` to ``tmp_path/agents/<name>.py``; return the argv that runs it."""
    folder = tmp_path / "agents"
    folder.mkdir(exist_ok=True)

    def make(name: str, code: str) -> list[str]:
        script = folder / f"{name}.py"
        script.write_text(textwrap.dedent(code))
        return [sys.executable, "-I", str(script)]

    return make


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path
