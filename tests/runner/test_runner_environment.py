"""The child environment (F24): allow-listed names, provider key from a protected
credential file, never from the worker's own environment."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from app.profiles.environment import CredentialError, build_child_env, read_credential_file
from app.profiles.profiles import Profile

KEY = "sk-ant-api03-" + "Q" * 40


@pytest.fixture
def credir(tmp_path: Path) -> Path:
    folder = tmp_path / "credentials"
    folder.mkdir()
    folder.chmod(0o700)
    return folder


def credfile(folder: Path, text: str, mode: int = 0o600) -> Path:
    path = folder / "anthropic.env"
    path.write_text(text)
    path.chmod(mode)
    return path


def profile(credential_file: Path | None, env_allow: list[str]) -> Profile:
    return Profile(argv=["/bin/agent"], env_allow=env_allow, credential_file=credential_file)


def test_credential_file_is_parsed(credir):
    path = credfile(
        credir,
        f"# provider keys\n\nANTHROPIC_API_KEY={KEY}\nexport OTHER='quoted value'\nEMPTY=\n",
    )
    values = read_credential_file(path, require_root_owned=True)
    assert values == {"ANTHROPIC_API_KEY": KEY, "OTHER": "quoted value", "EMPTY": ""}


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o606, 0o610])
def test_credential_file_readable_or_writable_by_others_is_refused(credir, mode):
    path = credfile(credir, f"ANTHROPIC_API_KEY={KEY}\n", mode=mode)
    with pytest.raises(CredentialError, match="mode"):
        read_credential_file(path, require_root_owned=False)


def test_credential_file_owned_by_another_user_is_refused(credir):
    path = credfile(credir, f"ANTHROPIC_API_KEY={KEY}\n")
    os.chown(path, 65534, 65534)
    with pytest.raises(CredentialError, match="owned by"):
        read_credential_file(path, require_root_owned=True)


def test_malformed_line_error_does_not_show_the_line(credir):
    path = credfile(credir, f"{KEY}\n")
    with pytest.raises(CredentialError) as info:
        read_credential_file(path, require_root_owned=True)
    assert "line 1" in str(info.value)
    assert KEY not in str(info.value)


def test_duplicate_name_is_refused(credir):
    path = credfile(credir, "A=1\nA=2\n")
    with pytest.raises(CredentialError, match="twice"):
        read_credential_file(path, require_root_owned=True)


def test_symlinked_credential_file_is_refused(credir, tmp_path):
    target = credfile(credir, f"ANTHROPIC_API_KEY={KEY}\n")
    link = credir / "link.env"
    link.symlink_to(target)
    with pytest.raises(CredentialError, match="symlink"):
        read_credential_file(link, require_root_owned=True)


def test_env_holds_only_allow_listed_names_from_the_credential_file(credir, caplog):
    path = credfile(credir, f"ANTHROPIC_API_KEY={KEY}\nAWS_SECRET_ACCESS_KEY=not-for-agent\n")
    with caplog.at_level(logging.INFO, logger="mission_control.profiles.environment"):
        env = build_child_env(profile(path, ["ANTHROPIC_API_KEY"]), require_root_owned=True)
    assert dict(env) == {"ANTHROPIC_API_KEY": KEY}
    assert env.secret_values == {KEY}
    # names of ignored entries may be logged; values never
    assert "not-for-agent" not in caplog.text and KEY not in caplog.text


def test_worker_environment_is_never_a_source(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-worker-env")
    monkeypatch.setenv("HOME", "/root")
    env = build_child_env(profile(None, ["ANTHROPIC_API_KEY", "HOME_DIR"]), require_root_owned=True)
    assert dict(env) == {}


def test_provided_values_must_be_allow_listed():
    prof = profile(None, ["RUN_HINT"])
    env = build_child_env(prof, require_root_owned=True, provided={"RUN_HINT": "x"})
    assert dict(env) == {"RUN_HINT": "x"}
    assert env.secret_values == frozenset()
    with pytest.raises(CredentialError, match="not in env_allow"):
        build_child_env(prof, require_root_owned=True, provided={"OTHER": "y"})


def test_credential_file_wins_over_provided_values(credir):
    path = credfile(credir, f"ANTHROPIC_API_KEY={KEY}\n")
    env = build_child_env(
        profile(path, ["ANTHROPIC_API_KEY"]),
        require_root_owned=True,
        provided={"ANTHROPIC_API_KEY": "from-the-worker"},
    )
    assert env["ANTHROPIC_API_KEY"] == KEY


def test_repr_of_env_shows_names_only(credir):
    path = credfile(credir, f"ANTHROPIC_API_KEY={KEY}\n")
    env = build_child_env(profile(path, ["ANTHROPIC_API_KEY"]), require_root_owned=True)
    assert KEY not in repr(env) and KEY not in str(env) and KEY not in f"{env}"
    assert "ANTHROPIC_API_KEY" in repr(env)


def test_missing_credential_file_is_an_error_at_run_time(credir):
    with pytest.raises(CredentialError, match="does not exist"):
        build_child_env(
            profile(credir / "absent.env", ["ANTHROPIC_API_KEY"]), require_root_owned=True
        )
