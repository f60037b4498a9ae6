"""pytest wiring for tests/provisioning (helpers: provisioning_support.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from provisioning_support import ROLES, load_yaml, resolve_vars


@pytest.fixture
def role_vars() -> Callable[..., dict[str, Any]]:
    """role_vars("nginx", nginx_temp_dir=...) -> the role's resolved variables."""

    def build(role: str, **overrides: Any) -> dict[str, Any]:
        defaults = load_yaml(ROLES / role / "defaults" / "main.yml") or {}
        return resolve_vars(defaults, overrides)

    return build
