"""One rule for the profiles file (F27, app/profiles/catalog.py): the worker and the
API load it the same way. For each state of the file the worker's answer
(``load_catalog``, what ``Worker`` runs at start) and the API's (``POST /api/agents``
naming a profile of that file) agree: both load it, or both refuse it, the API with
a 503 ``profiles_refused`` that gives the worker's reason and the fix, no file path,
never an ``unknown_profile``. A second copy of the rule on either side that drifts
(root ownership required in one place only, a refused file read as "no such
profile") fails here."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from app.profiles import catalog, profiles
from app.profiles.profiles import ProfileError
from tests.support.api import assert_error_shape

PROFILES = """
[profiles.demo]
runtime = "claude-code"
argv = ["{python}", "-I", "-m", "app.runner.demo_agent", "--model", "{model}"]
price_fallback = "demo"
"""
AGENT = {"name": "chad", "role": "lead", "model": "claude-sonnet", "profile": "demo"}
#: a user that is not root and not this process (the schemathesis fuzz's path check)
NOBODY = 65534
_ABSOLUTE = re.compile(r"/(?:home|usr|tmp|work|var|etc|root)/[\w./-]+")


def _not_root_owned(path: Path) -> None:
    # as root the file is given away; as anyone else it is that user's already
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)


def _write(folder: Path, case: str) -> Path:
    """The profiles file for ``case`` in ``folder`` (the host's /etc in this test)."""
    folder.mkdir(mode=0o755)
    path = folder / "profiles.toml"
    if case == "missing":  # the configured file is absent: the bundled example
        return path
    path.write_text("[profiles.demo\n" if case == "invalid TOML" else PROFILES)
    path.chmod(0o664 if case == "group-writable" else 0o644)
    if case == "not root-owned":
        _not_root_owned(path)
    if case == "directory not root-owned":
        _not_root_owned(folder)
    return path


CASES = [
    "root-owned",
    "missing",
    "not root-owned",
    "directory not root-owned",
    "group-writable",
    "invalid TOML",
    "outside /etc, not root-owned",
]


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "root-owned" and os.geteuid() != 0:
        pytest.skip("a root-owned file needs root to make")
    return name


@pytest.fixture
def settings_overrides(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    etc = tmp_path / "etc"
    # this test's /etc: a profiles file there must be root-owned, like the Pi's
    monkeypatch.setattr(profiles, "_ETC", etc)
    if case == "outside /etc, not root-owned":
        path = _write(tmp_path / "dev", "not root-owned")
    else:
        path = _write(etc, case)
    return {"profiles_path": path}


def _worker(settings: Settings) -> str | None:
    """What the worker says at start: None (it runs) or why it refuses the file."""
    try:
        catalog.load_catalog(settings)
    except ProfileError as exc:
        return str(exc)
    return None


async def test_the_worker_and_the_api_load_the_profiles_file_the_same_way(
    case: str,
    settings: Settings,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
) -> None:
    refused = _worker(settings)
    response = await client.post("/api/agents", json=AGENT, headers=admin_headers)
    expect_refused = case not in {"root-owned", "missing", "outside /etc, not root-owned"}
    assert (refused is not None) == expect_refused, refused
    if refused is None:
        assert response.status_code == 201, response.text
        return
    assert_error_shape(response, 503, "profiles_refused")
    message = response.json()["error"]["message"]
    # the worker's reason, less the path it names: the part after the last path
    path = settings.profiles_path
    named = str(path) if str(path) in refused else str(path.parent)
    reason = refused.rsplit(named, 1)[-1].strip(" :")
    assert reason, refused
    assert reason in message, (refused, message)
    assert "missionctl doctor" in message
    assert not _ABSOLUTE.findall(message), message
    assert str(path.parent) not in message


async def test_the_api_sees_a_fixed_file_at_once(
    case: str,
    settings: Settings,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
) -> None:
    """A chown or chmod moves no mtime: the API's cached answer still follows it."""
    if case not in {"not root-owned", "group-writable"} or os.geteuid() != 0:
        pytest.skip("a fix by chown or chmod, as root")
    path = settings.profiles_path
    before = await client.post("/api/agents", json=AGENT, headers=admin_headers)
    assert_error_shape(before, 503, "profiles_refused")
    os.chown(path, 0, 0)
    path.chmod(0o644)
    assert _worker(settings) is None
    after = await client.post("/api/agents", json=AGENT, headers=admin_headers)
    assert after.status_code == 201, after.text
