"""``missionctl`` commands against a real database file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.support.cli import missionctl


def test_version(tmp_path: Path) -> None:
    result = missionctl(tmp_path, "--version")
    assert result.returncode == 0 and result.stdout.startswith("missionctl ")


def test_db_migrate_is_idempotent(tmp_path: Path) -> None:
    first = missionctl(tmp_path, "db", "migrate")
    assert first.returncode == 0, first.stderr
    assert "applied: 0001" in first.stdout
    second = missionctl(tmp_path, "db", "migrate")
    assert "applied: none" in second.stdout


def _owner(tmp_path: Path, name: str = "ops") -> str:
    created = missionctl(
        tmp_path, "user", "create", name, "--password-stdin", stdin="a very long password\n"
    )
    assert created.returncode == 0, created.stderr
    return name


def test_token_create_needs_an_owning_user(tmp_path: Path) -> None:
    missing = missionctl(tmp_path, "token", "create", "--name", "ci", "--scope", "read")
    assert missing.returncode == 2 and "--owner" in missing.stderr
    unknown = missionctl(
        tmp_path, "token", "create", "--name", "ci", "--scope", "read", "--owner", "ghost"
    )
    assert unknown.returncode == 2 and "not an active user" in unknown.stderr
    assert not unknown.stdout
    owner = _owner(tmp_path)
    made = missionctl(
        tmp_path, "token", "create", "--name", "ci", "--scope", "read", "--owner", owner
    )
    assert made.returncode == 0, made.stderr
    conn = sqlite3.connect(tmp_path / "mc.db")
    owners = conn.execute(
        "SELECT users.username FROM api_tokens JOIN users ON users.id = api_tokens.owner_user_id"
    ).fetchall()
    assert owners == [("ops",)]


def test_token_create_prints_only_the_token(tmp_path: Path) -> None:
    owner = _owner(tmp_path)
    result = missionctl(
        tmp_path, "token", "create", "--name", "ci", "--scope", "operate", "--owner", owner
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mc_")
    token = lines[0]
    listing = missionctl(tmp_path, "token", "list")
    assert token.split("_")[1] in listing.stdout and token not in listing.stdout
    revoke = missionctl(tmp_path, "token", "revoke", token.split("_")[1])
    assert revoke.returncode == 0
    assert "revoked" in missionctl(tmp_path, "token", "list").stdout
    again = missionctl(tmp_path, "token", "revoke", token.split("_")[1])
    assert again.returncode == 1 and "no active token" in again.stderr


def test_user_create_and_passwd_from_stdin(tmp_path: Path) -> None:
    created = missionctl(
        tmp_path, "user", "create", "ops", "--password-stdin", stdin="a very long password\n"
    )
    assert created.returncode == 0, created.stderr
    weak = missionctl(tmp_path, "user", "create", "weak", "--password-stdin", stdin="short\n")
    assert weak.returncode == 1 and "at least" in weak.stderr
    changed = missionctl(
        tmp_path, "user", "passwd", "ops", "--password-stdin", stdin="another long password\n"
    )
    assert changed.returncode == 0
    conn = sqlite3.connect(tmp_path / "mc.db")
    actions = [r[0] for r in conn.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["user.created", "user.password_reset"]


def test_audit_verify_finds_tampering(tmp_path: Path) -> None:
    owner = _owner(tmp_path)
    for name in ("a", "b", "c"):
        missionctl(tmp_path, "token", "create", "--name", name, "--scope", "read", "--owner", owner)
    assert missionctl(tmp_path, "audit", "verify").returncode == 0
    conn = sqlite3.connect(tmp_path / "mc.db")
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET actor = 'cli:nobody' WHERE id = 2")
    conn.commit()
    result = missionctl(tmp_path, "audit", "verify")
    assert result.returncode == 1
    assert "record 2" in result.stderr


def test_first_run_creates_one_admin_and_keeps_the_password_out_of_stdout(tmp_path: Path) -> None:
    result = missionctl(tmp_path, "first-run")
    assert result.returncode == 0, result.stderr
    password_file = tmp_path / "state" / "initial-admin-password"
    password = password_file.read_text().strip()
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert password not in result.stdout + result.stderr
    assert str(password_file) in result.stdout
    assert missionctl(tmp_path, "first-run").stdout == ""


def test_doctor_passes_on_a_good_install_and_fails_on_bad_permissions(tmp_path: Path) -> None:
    missionctl(tmp_path, "first-run")
    good = missionctl(tmp_path, "doctor")
    assert good.returncode == 0, good.stdout
    assert "FAIL" not in good.stdout
    (tmp_path / "mc.db").chmod(0o644)
    bad = missionctl(tmp_path, "doctor")
    assert bad.returncode == 1
    assert "FAIL  database" in bad.stdout and "chmod 600" in bad.stdout


def test_doctor_fails_without_credentials_and_on_an_open_listener(tmp_path: Path) -> None:
    missionctl(tmp_path, "db", "migrate")
    result = missionctl(tmp_path, "doctor", MC_HOST="0.0.0.0")
    assert result.returncode == 1
    assert "FAIL  credentials" in result.stdout
    assert "FAIL  listen address" in result.stdout


def test_doctor_flags_a_readable_env_file(tmp_path: Path) -> None:
    missionctl(tmp_path, "first-run")
    env_file = tmp_path / "env"
    env_file.write_text("MC_LOG_LEVEL=INFO\n")
    env_file.chmod(0o644)
    result = missionctl(tmp_path, "doctor", MC_ENV_FILE=str(env_file))
    assert result.returncode == 1 and "FAIL  env file" in result.stdout


def test_serve_refuses_a_public_address(tmp_path: Path) -> None:
    result = missionctl(tmp_path, "serve", "--host", "0.0.0.0", "--port", "18080")
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_settings_are_reported_plainly(tmp_path: Path) -> None:
    result = missionctl(tmp_path, "doctor", MC_PORT="not-a-port")
    assert result.returncode == 2
    assert "invalid settings" in result.stderr and "Traceback" not in result.stderr
