"""Which release of Mission Control is running, and which one an update would
roll back to (shown on ``/api/health`` and the UI's health page).

The appliance installs each release side by side (``provisioning/update.yml``,
``provisioning/roles/app``): ``<root>/releases/<version>-<hash>/venv``, a
``<root>/current`` link to the release in use and, after an update, a
``<root>/previous`` link to the one before it. The running release is read from
the interpreter itself (the real path of ``sys.prefix``, the release's venv),
not from the links: between an update switching ``current`` and the restart,
or after a switch back, the two differ and the report says so. An interpreter
that is not inside ``<root>/releases`` is a development checkout.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

DEVELOPMENT = "development checkout"
#: at most this many installed releases are listed
MAX_LISTED = 20


def running_release(root: Path, prefix: str | os.PathLike[str] | None = None) -> str | None:
    """The name of the release whose venv runs this interpreter (``sys.prefix``),
    or None when it is not a release under ``<root>/releases``."""
    try:
        venv = Path(os.path.realpath(prefix if prefix is not None else sys.prefix))
        releases = Path(os.path.realpath(root / "releases"))
    except (OSError, ValueError):
        return None
    if venv.name != "venv" or venv.parent.parent != releases:
        return None
    return venv.parent.name


def linked_release(link: Path) -> str | None:
    """The release a ``current``/``previous`` link points at (None: no link, or
    it is dangling or points outside ``releases/``)."""
    try:
        if not link.is_symlink():
            return None
        target = Path(os.path.realpath(link))
        releases = Path(os.path.realpath(link.parent / "releases"))
    except (OSError, ValueError):
        return None
    if target.parent != releases or not target.is_dir():
        return None
    return target.name


def installed_releases(root: Path) -> list[os.DirEntry[str]]:
    """Release directories, newest first (by modification time)."""
    try:
        entries = [entry for entry in os.scandir(root / "releases") if entry.is_dir()]
        return sorted(entries, key=lambda entry: entry.stat().st_mtime, reverse=True)
    except OSError:
        return []


def release_info(
    root: Path, version: str, prefix: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """``running``: the running release's name, or ``"development checkout"``;
    ``version``: the package version; ``layout``: whether ``<root>`` has the
    release layout (a ``current`` link); then ``current``, ``previous`` (the
    ``previous`` link, or the newest other release when there is none) and
    ``installed``; ``switched``: true when ``current`` is not what runs (an
    update or a rollback waits for its restart)."""
    running = running_release(root, prefix)
    info: dict[str, Any] = {
        "running": running if running is not None else DEVELOPMENT,
        "version": version,
        "layout": False,
    }
    current = linked_release(root / "current")
    if current is None:
        return info
    installed = installed_releases(root)
    previous = linked_release(root / "previous")
    if previous is None or previous == current:
        previous = next((entry.name for entry in installed if entry.name != current), None)
    info.update(
        {
            "layout": True,
            "current": current,
            "previous": previous,
            "installed": sorted(entry.name for entry in installed)[:MAX_LISTED],
            "switched": running is not None and running != current,
        }
    )
    return info
