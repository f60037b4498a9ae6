"""The price table follows the profiles file's rule for host files: in /etc,
literally or once symlinks are resolved, it must be root-owned
(``app.profiles.profiles.under_etc``, docs/capability.md "Prices")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.profiles import profiles
from app.profiles.prices import load_prices
from app.profiles.profiles import ProfileError

PRICES = '[models."claude-test"]\ninput = 1.0\noutput = 2.0\n'


def _etc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's /etc: a host file there must be root-owned, like the Pi's."""
    etc = tmp_path / "etc"
    (etc / "mission-control").mkdir(parents=True)
    monkeypatch.setattr(profiles, "_ETC", etc)
    return etc


def _not_root_owned(path: Path) -> Path:
    path.write_text(PRICES)
    path.chmod(0o644)
    if os.geteuid() == 0:
        os.chown(path, 1000, 1000)
    return path


def test_a_price_table_in_etc_must_be_root_owned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = _etc(tmp_path, monkeypatch)
    path = _not_root_owned(etc / "mission-control" / "prices.toml")
    with pytest.raises(ProfileError, match="root"):
        load_prices(path)


def test_a_price_table_reached_into_etc_through_a_symlinked_directory_must_be_root_owned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = _etc(tmp_path, monkeypatch)
    _not_root_owned(etc / "mission-control" / "prices.toml")
    (tmp_path / "conf").symlink_to(etc / "mission-control")
    with pytest.raises(ProfileError, match="root"):
        load_prices(tmp_path / "conf" / "prices.toml")


def test_a_price_table_outside_etc_may_belong_to_the_developer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _etc(tmp_path, monkeypatch)
    path = _not_root_owned(tmp_path / "prices.toml")
    assert load_prices(path).path == path
