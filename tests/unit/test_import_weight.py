"""What each process loads at start-up (its idle memory; docs/performance.md).

The worker never serves HTTP: it must not load the web framework. The API loads
Jinja2 (the UI's templates) and argon2 (password hashing) on the first page or
login, not at start-up. Checked in a fresh interpreter, by module name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WEB = ("fastapi", "starlette", "uvicorn", "httptools", "jinja2", "argon2", "app.main", "app.ui")


def _loaded(code: str, tmp_path: Path) -> set[str]:
    env = {
        "MC_DATABASE_PATH": str(tmp_path / "mc.db"),
        "MC_STATE_DIR": str(tmp_path / "state"),
        "MC_ENV_FILE": str(tmp_path / "no-env-file"),
        "PATH": "/usr/bin:/bin",
    }
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def _offending(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in prefixes or m.startswith(prefixes))


def test_the_worker_loads_no_web_framework(tmp_path: Path) -> None:
    # what ``missionctl worker`` imports before it runs: the CLI, its settings, the worker
    modules = _loaded(
        "from app import cli\n"
        "settings = cli.load_settings()\n"
        "import app.core.logging, app.runner.worker",
        tmp_path,
    )
    assert "app.runner.worker" in modules
    assert _offending(modules, WEB) == []


def test_the_api_loads_templates_and_password_hashing_on_first_use(tmp_path: Path) -> None:
    modules = _loaded(
        "from app.core.settings import load_settings\n"
        "from app.main import create_app\n"
        "create_app(load_settings())",
        tmp_path,
    )
    assert "fastapi" in modules and "app.ui.page_kit" in modules
    assert _offending(modules, ("jinja2", "argon2")) == []
