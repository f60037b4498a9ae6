"""The owner's first minutes: ``first-run`` says where the UI and the password are,
``missionctl`` started from the wrong folder refuses instead of creating an empty
database, and ``make run`` logs no warning for the bundled demo profiles."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.settings import Settings
from app.profiles.catalog import load_catalog
from tests.support.cli import missionctl

REPO = Path(__file__).resolve().parents[2]


def test_first_run_says_where_the_ui_and_the_password_file_are(tmp_path: Path) -> None:
    result = missionctl(tmp_path, "first-run", MC_PORT="18123")
    assert result.returncode == 0, result.stderr
    password_file = (tmp_path / "state" / "initial-admin-password").absolute()
    assert "http://127.0.0.1:18123/" in result.stdout
    assert f"in {password_file} " in result.stdout
    assert "User name:     admin" in result.stdout
    assert "POST /api/auth/login" not in result.stdout
    assert password_file.read_text().strip() not in result.stdout + result.stderr


def outside(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """missionctl started in an empty folder with no database configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MC_")}
    env["MC_ENV_FILE"] = str(tmp_path / "no-env-file")
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("token", "list"),
        ("user", "create", "eve", "--password-stdin"),
        ("db", "migrate"),
        ("first-run",),
        ("audit", "verify"),
        ("backup", "create"),
    ],
)
def test_missionctl_from_another_folder_creates_no_database(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = outside(tmp_path, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    database = tmp_path / "var" / "mission-control.db"
    assert f"there is no database at {database}" in result.stderr
    assert "missionctl db migrate --create" in result.stderr
    assert not (tmp_path / "var").exists()


def test_db_migrate_create_makes_it_on_purpose(tmp_path: Path) -> None:
    created = outside(tmp_path, "db", "migrate", "--create")
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "var" / "mission-control.db").is_file()
    # from now on this folder has a database: other commands use it
    listed = outside(tmp_path, "token", "list")
    assert listed.returncode == 0, listed.stderr


def test_commands_without_a_database_still_run_anywhere(tmp_path: Path) -> None:
    scrubbed = subprocess.run(
        [sys.executable, "-m", "app.cli", "scrub"],
        cwd=tmp_path,
        input="nothing secret\n",
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MC_")},
             "MC_ENV_FILE": str(tmp_path / "none"), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert scrubbed.returncode == 0 and scrubbed.stdout == "nothing secret\n"
    assert not (tmp_path / "var").exists()


def test_the_bundled_profiles_are_no_warning_unless_a_file_was_configured(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MC_PROFILES_PATH", raising=False)
    caplog.set_level(logging.DEBUG, logger="mission_control.profiles.catalog")
    default = Settings(_env_file=None, database_path=tmp_path / "a.db")  # type: ignore[call-arg]
    assert not default.profiles_path.exists()
    assert load_catalog(default).bundled
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    caplog.clear()
    configured = Settings(_env_file=None, profiles_path=tmp_path / "gone.toml")  # type: ignore[call-arg]
    assert load_catalog(configured).bundled
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_doctor_checks_the_serving_port_password_file_worker_and_backup(tmp_path: Path) -> None:
    from tests.support.browser import wait_healthy
    from tests.support.cli import cli_env, free_port

    assert missionctl(tmp_path, "first-run").returncode == 0
    before = missionctl(tmp_path, "doctor")
    assert "WARN  serving: nothing answers on http://127.0.0.1:8080" in before.stdout
    assert "WARN  first-run password:" in before.stdout and "choose your own" in before.stdout
    assert "WARN  worker: no worker has ever reported" in before.stdout
    assert "WARN  backup: No backup archive was found" in before.stdout
    assert "missionctl backup create" in before.stdout

    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=REPO,
        env=cli_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", serve)
        (tmp_path / "state" / "initial-admin-password").unlink()
        assert missionctl(tmp_path, "backup", "create").returncode == 0
        during = missionctl(tmp_path, "doctor")
    finally:
        serve.terminate()
        serve.wait(timeout=20)
    assert (
        f"PASS  serving: serving on http://127.0.0.1:{port} (pid {serve.pid}), not on the"
        " configured http://127.0.0.1:8080"
    ) in during.stdout
    assert "/healthz says ok" in during.stdout
    assert "PASS  first-run password" in during.stdout
    assert "PASS  backup" in during.stdout
    assert during.returncode == 0, during.stdout
    assert not (tmp_path / "state" / "serving.json").exists()  # removed when serve stops
