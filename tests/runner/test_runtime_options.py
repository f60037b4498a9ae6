"""A profile's runtime options are checked when the profiles file is loaded
(app/profiles/runtime_options.py): an unknown key or a wrong value refuses the file
with the profile, the key and the fix; ``missionctl doctor`` and the health report
say so. The bundled example profiles of every runtime load."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.settings import Settings
from app.doctor import check_profiles
from app.profiles.catalog import profiles_status
from app.profiles.profiles import EXAMPLE_PROFILES_PATH, ProfileError, load_profiles
from app.profiles.runtime_options import RUNTIME_OPTIONS


def write(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o755, exist_ok=True)
    path = folder / "profiles.toml"
    path.write_text(text)
    path.chmod(0o644)
    return path


CODEX = """
[profiles.cx]
runtime = "codex"
argv = ["/usr/bin/codex"]
[profiles.cx.options]
"""


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ('sandbox_mode = "danger-full-access"', ["profile 'cx'", "'sandbox_mode'", "remove it"]),
        ('provider = "local"\nbase_url = 11434', ["profile 'cx'", "'base_url'", "got int"]),
        ('provider = "local"\nbase_url = "file:///etc/passwd"', ["'base_url'", "http(s) URL"]),
        ('provider = "local"\nbase_url = "http://u:p@h/v1"', ["'base_url'", "user:password"]),
        ('provider = "Local Box"\nbase_url = "http://h/v1"', ["'provider'", "lower-case"]),
        ('provider = "l"\nbase_url = "http://h/v1"\nwire_api = "chat"', ["'wire_api'", "one of"]),
        ('base_url = "http://h/v1"', ["'base_url'", "needs option 'provider'", "add it"]),
        ('provider = "l"\nbase_url = "http://h/v1"\nenv_key = "lower"', ["'env_key'"]),
    ],
)
def test_a_bad_codex_option_refuses_the_file_naming_profile_key_and_fix(
    tmp_path: Path, options: str, says: list[str]
) -> None:
    path = write(tmp_path, CODEX + options + "\n")
    with pytest.raises(ProfileError) as refused:
        load_profiles(path, require_root_owned=False)
    for words in says:
        assert words in str(refused.value), str(refused.value)
    assert "Value error" not in str(refused.value)


@pytest.mark.parametrize("runtime", ["claude-code", "gemini", "generic"])
def test_runtimes_without_options_refuse_any(tmp_path: Path, runtime: str) -> None:
    path = write(
        tmp_path,
        f'[profiles.p]\nruntime = "{runtime}"\nargv = ["/usr/bin/x"]\n'
        '[profiles.p.options]\nprovider = "x"\n',
    )
    with pytest.raises(ProfileError, match=r"profile 'p'.*'provider'.*its options: none"):
        load_profiles(path, require_root_owned=False)


def test_opencode_needs_its_endpoint(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[profiles.oc]\nruntime = "opencode"\nargv = ["/usr/bin/opencode"]\n',
    )
    with pytest.raises(ProfileError, match=r"profile 'oc'.*needs option 'provider'.*add it"):
        load_profiles(path, require_root_owned=False)


def test_doctor_and_health_show_the_refusal(tmp_path: Path) -> None:
    path = write(tmp_path, CODEX + 'sandbox_mode = "danger-full-access"\n')
    settings = Settings(profiles_path=path, database_path=tmp_path / "mc.db")
    check = check_profiles(settings)
    assert not check.ok and not check.warning
    assert "profile 'cx'" in check.detail and "'sandbox_mode'" in check.detail
    health = profiles_status(settings).as_dict()
    assert health["ok"] is False and "'sandbox_mode'" in str(health["error"])
    assert health["profiles"] == []
    path.write_text(CODEX + 'provider = "local"\nbase_url = "http://127.0.0.1:11434/v1"\n')
    check = check_profiles(settings)
    assert check.ok and "cx (codex)" in check.detail


def test_every_example_profile_loads_and_names_its_runtime(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE_PROFILES_PATH.read_text())
    profiles = load_profiles(path, require_root_owned=True)
    runtimes = {name: p.runtime for name, p in profiles.items()}
    assert runtimes["codex"] == "codex" and runtimes["gemini"] == "gemini"
    assert runtimes["opencode"] == "opencode"
    # an example for every runtime but the generic one
    assert {p.runtime for p in profiles.values()} == set(RUNTIME_OPTIONS) - {"generic"}
    local = profiles["local"]
    assert local.runtime == "opencode" and local.price_fallback == "local"
    assert local.options["base_url"].startswith("http://127.0.0.1:11434/")
    assert profiles["local-codex"].options["wire_api"] == "responses"
    assert profiles["local-codex"].price_fallback == "local"
    assert profiles["gemini"].exec_allow == ["/usr/bin/node"]
    assert profiles["claude-login"].login_dir == Path("/etc/mission-control/logins/claude")
    assert profiles["claude-login"].credential_file is None
    assert profiles["codex-login"].login_dir is not None and not profiles["codex-login"].options


def test_the_local_profiles_cost_nothing_said_explicitly() -> None:
    from app.profiles.prices import load_prices

    table = load_prices(None)
    price = table.lookup("qwen2.5-coder:7b", fallback="local")
    assert price is not None
    assert (price.input, price.output, price.cache_read, price.cache_write) == (0, 0, 0, 0)
    assert table.lookup("qwen2.5-coder:7b") is None  # without the fallback: refused
