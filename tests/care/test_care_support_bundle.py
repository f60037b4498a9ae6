"""``missionctl support-bundle``: everything a helper needs, no secret.

Secrets are planted in the settings (``MC_SECRET_KEY``, a webhook URL with a
token), in the logs (a fake ``journalctl`` on ``PATH``), in the unit properties
(a fake ``systemctl``) and in the database (an API token, an agent memory entry
and an audit summary holding keys); then every member's bytes are searched.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import tarfile
from pathlib import Path

import pytest

from app.core.settings import Settings
from app.security.credential_gate import contains_credential
from app.support import bundle as bundle_module
from app.support.bundle import BundleError, Redactor, write_bundle
from tests.support.cli import missionctl

SECRET_KEY = "Vq7tB2nX9kLm4PzR8sW1cY6dF3hJ0aGe5uIo-Ns_Tq"
WEBHOOK_TOKEN = "Kd83JfA0qPzM2nVb7XcLw5RtYh1Ug6Ei"
WEBHOOK_URL = f"https://hooks.example.net/notify/{WEBHOOK_TOKEN}"
GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
ANTHROPIC_KEY = "sk-ant-api03-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe" * 3  # planted
AWS_KEY = "AKIA" + "Z7Q2M4X6B3N5V2KW"
LOG_PASSWORD = "hunter2-but-longer-42"
BENIGN_LOG_LINE = "Started Mission Control API (unix socket behind nginx)."
ENV_ONLY_SECRET = "env-file-only-secret-Pq81Lz"

MEMBERS = {
    "README.txt",
    "audit.json",
    "database.json",
    "doctor.txt",
    "errors.txt",
    "health.json",
    "kernel.txt",
    "logs.txt",
    "manifest.json",
    "settings.json",
    "system.txt",
    "units.txt",
    "versions.json",
}


def fake_tools(folder: Path, api_token: str) -> None:
    folder.mkdir()
    journal_lines = "\n".join(
        [
            f"2026-11-29T02:00:00+0000 pi missionctl[1]: {BENIGN_LOG_LINE}",
            f"2026-11-29T02:00:01+0000 pi missionctl[1]: key loaded: {SECRET_KEY}",
            f"2026-11-29T02:00:02+0000 pi missionctl[1]: POST {WEBHOOK_URL} failed",
            f"2026-11-29T02:00:03+0000 pi curl[2]: Authorization: Bearer {api_token}",
            f"2026-11-29T02:00:04+0000 pi agent[3]: cloned with {GITHUB_TOKEN}",
            f"2026-11-29T02:00:05+0000 pi agent[3]: password={LOG_PASSWORD}",
            f"2026-11-29T02:00:06+0000 pi agent[3]: export AWS_ACCESS_KEY_ID={AWS_KEY}",
            f"2026-11-29T02:00:07+0000 pi agent[3]: using {ANTHROPIC_KEY}",
        ]
    )
    (folder / "journalctl").write_text(f"#!/bin/sh\ncat <<'EOF'\n{journal_lines}\nEOF\n")
    (folder / "systemctl").write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  is-active) echo active ;;\n"
        "  show) echo Id=$2; echo ActiveState=active;"
        f" echo Environment=MC_SECRET_KEY={SECRET_KEY} ;;\n"
        "  *) echo 'mission-control-backup.service loaded failed failed backup' ;;\n"
        "esac\n"
    )
    for tool in folder.iterdir():
        tool.chmod(0o755)


def plant_in_database(database: Path) -> None:
    conn = sqlite3.connect(database)
    with conn:
        now = "2026-11-29T02:00:00.000000Z"
        agent = conn.execute(
            "INSERT INTO agents (name, role, model, quota_tokens_per_day,"
            " quota_cost_usd_per_day, quota_runs_per_day, created_at, updated_at)"
            " VALUES ('helper', 'helps', 'demo-1', 1000, 1, 10, ?, ?)",
            (now, now),
        ).lastrowid
        conn.execute(
            "INSERT INTO agent_memory (agent_id, content, created_by, created_at)"
            " VALUES (?, ?, 'test', ?)",
            (agent, f"the deploy key is {ANTHROPIC_KEY} and {WEBHOOK_TOKEN}", now),
        )
    conn.close()


def channels_file(tmp_path: Path) -> Path:
    """The notifier's channels file, holding the webhook URL (its token is secret)."""
    path = tmp_path / "notify.toml"
    url = WEBHOOK_URL.replace("https://", "jsons://")
    path.write_text(f'[[channel]]\nname = "hook"\nurl = "{url}"\n')
    path.chmod(0o600)
    return path


def members(archive: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            assert member.isfile() and member.name.startswith("mission-control-support/")
            handle = tar.extractfile(member)
            assert handle is not None
            found[member.name.split("/", 1)[1]] = handle.read()
    return found


def test_the_bundle_holds_what_helps_and_none_of_the_planted_secrets(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text(f"MC_LOG_LEVEL=INFO\nMC_SMTP_PASSWORD={ENV_ONLY_SECRET}\n")
    env_file.chmod(0o600)
    extra = {
        "MC_ENV_FILE": str(env_file),
        "MC_SECRET_KEY": SECRET_KEY,
        "MC_NOTIFY_CHANNELS_PATH": str(channels_file(tmp_path)),
    }
    assert missionctl(tmp_path, "first-run", **extra).returncode == 0
    created = missionctl(
        tmp_path,
        "token",
        "create",
        "--name",
        f"deploy {GITHUB_TOKEN}",  # lands in the audit summary
        "--scope",
        "read",
        "--owner",
        "admin",  # made by first-run
        **extra,
    )
    assert created.returncode == 0, created.stderr
    api_token = created.stdout.strip()
    plant_in_database(tmp_path / "mc.db")
    fake_tools(tmp_path / "bin", api_token)
    output = tmp_path / "out" / "bundle.tar.gz"

    result = missionctl(
        tmp_path,
        "support-bundle",
        "--output",
        str(output),
        PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        **extra,
    )

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert not list(output.parent.glob(".*partial"))
    found = members(output)
    assert set(found) == MEMBERS
    planted = [
        SECRET_KEY,
        WEBHOOK_TOKEN,
        WEBHOOK_URL,
        api_token,
        api_token.split("_")[-1],
        GITHUB_TOKEN,
        ANTHROPIC_KEY,
        AWS_KEY,
        LOG_PASSWORD,
        ENV_ONLY_SECRET,
    ]
    for name, data in found.items():
        for secret in planted:
            assert secret.encode() not in data, f"{name} holds a planted secret"
        assert not contains_credential(data.decode()), name
    # ...and what helps is there
    logs = found["logs.txt"].decode()
    assert BENIGN_LOG_LINE in logs and "[REDACTED:" in logs
    units = found["units.txt"].decode()
    assert "## mission-control.service: active" in units and "mission-control-backup" in units
    settings = json.loads(found["settings.json"])
    assert settings["secret_key"] == "[removed: set]"
    assert settings["notify_channels_path"] == str(tmp_path / "notify.toml")
    assert settings["database_path"] == str(tmp_path / "mc.db")
    versions = json.loads(found["versions.json"])
    assert versions["mission_control"] and versions["packages"]["fastapi"]
    assert "PASS  database" in found["doctor.txt"].decode()
    health = json.loads(found["health.json"])
    assert health["status"] == "ok" and isinstance(health["repairs"], list)
    database = json.loads(found["database.json"])
    assert database["rows"]["agent_memory"] == 1 and database["schema_version"] >= 2
    assert database["quick_check"] == "ok"
    audit = json.loads(found["audit.json"])
    assert audit and all(set(r) == {"id", "ts", "action", "outcome", "actor_kind"} for r in audit)
    assert "token.created" in {r["action"] for r in audit}
    manifest = json.loads(found["manifest.json"])
    assert set(manifest["members"]) == MEMBERS - {"manifest.json"}
    assert manifest["redacted"]["known_secret"] >= 3
    assert found["errors.txt"] == b"(nothing failed)\n"
    assert str(output) in result.stdout


def test_without_systemd_the_bundle_says_so(tmp_path: Path) -> None:
    missionctl(tmp_path, "first-run")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    python_dir = Path(os.sys.executable).parent
    result = missionctl(
        tmp_path,
        "support-bundle",
        "--output",
        str(tmp_path / "b.tar.gz"),
        PATH=f"{empty}:{python_dir}",
    )
    assert result.returncode == 0, result.stderr
    found = members(tmp_path / "b.tar.gz")
    assert b"systemctl is not installed here" in found["units.txt"]
    assert b"journalctl is not installed here" in found["logs.txt"]


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "taken.tar.gz"
    target.write_text("mine")
    result = missionctl(tmp_path, "support-bundle", "--output", str(target))
    assert result.returncode == 1 and "exists" in result.stderr
    assert target.read_text() == "mine"


def test_the_final_scan_deletes_a_bundle_that_would_leak(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a secret slipped past the redaction on the way in, nothing is left behind."""
    settings.secret_key = None
    monkeypatch.setattr(Redactor, "__call__", lambda self, text: text)  # redaction broken
    monkeypatch.setattr(
        bundle_module.collect, "journal", lambda lines: f"token {GITHUB_TOKEN} in a log\n"
    )
    target = tmp_path / "leaky.tar.gz"
    with pytest.raises(BundleError, match=r"logs\.txt: credential_gate"):
        write_bundle(settings, target)
    assert not target.exists()
    assert not list(tmp_path.glob(".*partial"))


def test_known_values_are_removed_even_when_the_gate_does_not_know_their_format(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.notify_channels_path = channels_file(tmp_path)
    monkeypatch.setattr(
        bundle_module.collect, "journal", lambda lines: f"sent to {WEBHOOK_TOKEN}\n"
    )
    report = write_bundle(settings, tmp_path / "b.tar.gz")
    logs = members(report.path)["logs.txt"]
    assert WEBHOOK_TOKEN.encode() not in logs and b"[REDACTED:known_secret]" in logs
    assert report.redacted["known_secret"] >= 1
    assert io.BytesIO(logs).read()  # the member is there, just redacted
