"""pytest wiring for tests/provisioning (helpers: tests/support/provisioning.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.provisioning import ROLES, load_yaml, resolve_vars


@pytest.fixture
def role_vars() -> Callable[..., dict[str, Any]]:
    """role_vars("nginx", nginx_temp_dir=...) -> the role's resolved variables."""

    def build(role: str, **overrides: Any) -> dict[str, Any]:
        defaults = load_yaml(ROLES / role / "defaults" / "main.yml") or {}
        return resolve_vars(defaults, overrides)

    return build
