"""Every file the app needs besides its Python modules ships in the wheel the Pi
installs (``[tool.setuptools.package-data]``): a file left out works in a checkout
and is missing on the Pi (the worker once failed there without its price table)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "app"


def test_every_data_file_of_the_app_is_packaged() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["app"]
    packaged = {p for pattern in patterns for p in APP.glob(pattern) if p.is_file()}
    data = {
        p
        for p in APP.rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts
    }
    missing = sorted(str(p.relative_to(REPO)) for p in data - packaged)
    assert not missing, f"not in package-data: {missing}"
    assert APP / "profiles" / "prices.toml" in packaged
