"""The running and the previous release on the health report (app/health/release.py),
with real release directories and links in a temporary ``/opt/mission-control``."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import __version__
from app.core.context import AppContext
from app.health.release import DEVELOPMENT, linked_release, release_info, running_release
from tests.support.api import login


def make_release(root: Path, name: str, age_s: float = 0) -> Path:
    venv = root / "releases" / name / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    if age_s:
        then = time.time() - age_s
        os.utime(root / "releases" / name, (then, then))
    return venv


def link(root: Path, name: str, release: str) -> None:
    path = root / name
    if path.is_symlink():
        path.unlink()
    path.symlink_to(root / "releases" / release)


def test_a_development_checkout_says_so(tmp_path: Path) -> None:
    root = tmp_path / "opt"
    assert release_info(root, "1.2.3") == {
        "running": DEVELOPMENT,
        "version": "1.2.3",
        "layout": False,
    }
    # this very test runs from the repository's venv, not from a release
    assert running_release(root) is None
    assert running_release(root, sys.prefix) is None


def test_the_running_release_is_read_from_the_interpreter(tmp_path: Path) -> None:
    root = tmp_path / "opt"
    old = make_release(root, "0.1.0-aaaaaaaaaaaa", age_s=100)
    new = make_release(root, "0.2.0-bbbbbbbbbbbb")
    link(root, "current", "0.2.0-bbbbbbbbbbbb")
    link(root, "previous", "0.1.0-aaaaaaaaaaaa")
    # as the units start it: through the current link (its real path counts)
    info = release_info(root, "0.2.0", prefix=root / "current" / "venv")
    assert info == {
        "running": "0.2.0-bbbbbbbbbbbb",
        "version": "0.2.0",
        "layout": True,
        "current": "0.2.0-bbbbbbbbbbbb",
        "previous": "0.1.0-aaaaaaaaaaaa",
        "installed": ["0.1.0-aaaaaaaaaaaa", "0.2.0-bbbbbbbbbbbb"],
        "switched": False,
    }
    assert running_release(root, new) == "0.2.0-bbbbbbbbbbbb"
    # a rollback switched current back; the process still runs the new code
    link(root, "current", "0.1.0-aaaaaaaaaaaa")
    info = release_info(root, "0.2.0", prefix=new)
    assert (info["running"], info["current"], info["switched"]) == (
        "0.2.0-bbbbbbbbbbbb",
        "0.1.0-aaaaaaaaaaaa",
        True,
    )
    assert release_info(root, "0.1.0", prefix=old)["switched"] is False


def test_a_root_reached_through_a_link_is_the_same_root(tmp_path: Path) -> None:
    real = tmp_path / "disk" / "mission-control"
    make_release(real, "1.0.0-cccccccccccc")
    link(real, "current", "1.0.0-cccccccccccc")
    root = tmp_path / "opt"
    root.symlink_to(real)
    info = release_info(root, "1.0.0", prefix=root / "current" / "venv")
    assert info["running"] == info["current"] == "1.0.0-cccccccccccc"


def test_a_venv_elsewhere_is_not_a_release(tmp_path: Path) -> None:
    root = tmp_path / "opt"
    make_release(root, "1.0.0-dddddddddddd")
    link(root, "current", "1.0.0-dddddddddddd")
    stray = tmp_path / "elsewhere" / "releases" / "1.0.0-dddddddddddd" / "venv"
    stray.mkdir(parents=True)
    assert running_release(root, stray) is None
    # not the venv itself but a directory inside the release
    assert running_release(root, root / "releases" / "1.0.0-dddddddddddd") is None
    assert release_info(root, "1.0.0", prefix=stray)["running"] == DEVELOPMENT


def test_without_a_previous_link_the_newest_other_release_counts(tmp_path: Path) -> None:
    root = tmp_path / "opt"
    make_release(root, "0.1.0-aaaaaaaaaaaa", age_s=300)
    make_release(root, "0.1.5-eeeeeeeeeeee", age_s=100)
    make_release(root, "0.2.0-bbbbbbbbbbbb")
    link(root, "current", "0.2.0-bbbbbbbbbbbb")
    assert release_info(root, "0.2.0")["previous"] == "0.1.5-eeeeeeeeeeee"
    # a previous link equal to current (a botched rollback) is not believed either
    link(root, "previous", "0.2.0-bbbbbbbbbbbb")
    assert release_info(root, "0.2.0")["previous"] == "0.1.5-eeeeeeeeeeee"
    # only one release: no previous
    for name in ("0.1.0-aaaaaaaaaaaa", "0.1.5-eeeeeeeeeeee"):
        (root / "releases" / name / "venv" / "bin" / "python").unlink()
        for sub in ("venv/bin", "venv", ""):
            (root / "releases" / name / sub).rmdir()
    assert release_info(root, "0.2.0")["previous"] is None


def test_dangling_and_foreign_links_are_no_release(tmp_path: Path) -> None:
    root = tmp_path / "opt"
    make_release(root, "1.0.0-ffffffffffff")
    (root / "current").symlink_to(root / "releases" / "gone")
    assert linked_release(root / "current") is None
    assert release_info(root, "1.0.0")["layout"] is False
    (root / "current").unlink()
    (tmp_path / "other").mkdir()
    (root / "current").symlink_to(tmp_path / "other")
    assert linked_release(root / "current") is None
    (root / "current").unlink()
    (root / "current").mkdir()  # a directory, not a link
    assert linked_release(root / "current") is None
    assert release_info(root, "1.0.0")["layout"] is False


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    return {"release_root": tmp_path / "opt"}


async def test_the_health_report_and_page_show_the_releases(
    client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str], admin_user: str
) -> None:
    body = (await client.get("/api/health", headers=admin_headers)).json()
    assert body["release"]["running"] == DEVELOPMENT
    assert body["release"]["version"] == __version__
    root = ctx.settings.release_root
    make_release(root, "0.0.9-aaaaaaaaaaaa", age_s=60)
    make_release(root, f"{__version__}-bbbbbbbbbbbb")
    link(root, "current", f"{__version__}-bbbbbbbbbbbb")
    link(root, "previous", "0.0.9-aaaaaaaaaaaa")
    release = (await client.get("/api/health", headers=admin_headers)).json()["release"]
    assert release["layout"] is True
    assert (release["current"], release["previous"]) == (
        f"{__version__}-bbbbbbbbbbbb",
        "0.0.9-aaaaaaaaaaaa",
    )
    assert (await login(client, admin_user)).status_code == 200
    page = (await client.get("/ui/health")).text
    assert f"{DEVELOPMENT} · previous: 0.0.9-aaaaaaaaaaaa" in page, page
    # the unauthenticated health answer says nothing about releases
    public = await client.get("/healthz")
    assert public.json() == {"status": "ok"}
