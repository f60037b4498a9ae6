"""Command profiles (F27): host configuration, validated strictly at load time."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from app.profiles.profiles import (
    EXAMPLE_PROFILES_PATH,
    Limits,
    Profile,
    ProfileError,
    load_profiles,
    render_argv,
)

GOOD = """
[profiles.agent]
argv = ["/usr/bin/agent", "--workdir", "{workspace}", "--model={model}"]
env_allow = ["ANTHROPIC_API_KEY"]
output_format = "claude-json"

[profiles.agent.limits]
wall_clock_seconds = 60
"""


@pytest.fixture
def confdir(tmp_path: Path) -> Path:
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    return folder


def write(folder: Path, text: str, mode: int = 0o644) -> Path:
    path = folder / "profiles.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def load(path: Path, *, require_root_owned: bool = True) -> dict[str, Profile]:
    return load_profiles(path, require_root_owned=require_root_owned)


# ---------------------------------------------------------------- accepted


def test_example_file_loads_with_every_profile(confdir):
    path = confdir / "profiles.toml"
    shutil.copyfile(EXAMPLE_PROFILES_PATH, path)
    path.chmod(0o644)
    profiles = load(path)
    # the other runtimes' examples: tests/runner/test_runtime_options.py
    assert {"claude", "demo"} <= set(profiles)
    claude = profiles["claude"]
    assert claude.argv == ["claude", "--model", "{model}"]
    assert claude.runtime == "claude-code"
    assert claude.commands_policy == "per-agent"
    assert claude.credential_file == Path("/etc/mission-control/credentials/anthropic.env")
    assert "ANTHROPIC_API_KEY" in claude.env_allow
    demo = profiles["demo"]
    assert demo.argv[0] == "{python}"
    assert demo.credential_file is None
    assert demo.commands_policy == "per-agent"
    assert demo.price_fallback == "demo"


@pytest.mark.parametrize(
    "flag",
    [
        "--dangerously-skip-permissions",
        "--allow-dangerously-skip-permissions",
        "--permission-mode=bypassPermissions",
        "bypassPermissions",
    ],
)
@pytest.mark.parametrize("runtime", ["claude-code", "generic"])
def test_a_profile_that_switches_permissions_off_is_refused(confdir, flag, runtime):
    text = f'[profiles.a]\nruntime = "{runtime}"\nargv = ["claude", "{flag}"]\n'
    bad(confdir, text, "permission checks off")


@pytest.mark.parametrize(
    "flag", ["--allowedTools", "--tools", "--permission-mode", "-p", "--max-budget-usd"]
)
def test_a_claude_code_profile_may_not_set_what_the_capability_decides(confdir, flag):
    text = f'[profiles.a]\nruntime = "claude-code"\nargv = ["claude", "{flag}", "x"]\n'
    bad(confdir, text, "set by the claude-code runtime")


def test_a_generic_profile_runs_commands_unless_it_says_otherwise(confdir):
    path = write(
        confdir,
        '[profiles.a]\nargv = ["/bin/agent"]\n'
        '[profiles.b]\nargv = ["/bin/agent"]\ncommands = "never"\n',
    )
    profiles = load(path)
    assert profiles["a"].commands_policy == "always"
    assert profiles["b"].commands_policy == "never"


def test_defaults_of_limits():
    limits = Limits()
    assert limits.wall_clock_seconds == 900
    assert limits.stdout_cap_bytes == 5_000_000
    assert limits.stderr_cap_bytes == 256 * 1024


def test_valid_file_loads(confdir):
    profiles = load(write(confdir, GOOD))
    agent = profiles["agent"]
    assert agent.limits.wall_clock_seconds == 60
    assert agent.limits.stdout_cap_bytes == 5_000_000
    assert agent.placeholders == {"workspace", "model"}


def test_non_root_owner_is_accepted_only_in_dev_mode(confdir):
    path = write(confdir, GOOD)
    os.chown(path, 65534, 65534)
    assert "agent" in load(path, require_root_owned=False)
    with pytest.raises(ProfileError, match="owned by uid 65534"):
        load(path, require_root_owned=True)


def test_directory_not_owned_by_root_is_refused_in_production(confdir):
    path = write(confdir, GOOD)
    os.chown(confdir, 65534, 65534)
    with pytest.raises(ProfileError, match="must be owned by root"):
        load(path)


# ---------------------------------------------------------------- refused: file


@pytest.mark.parametrize("mode", [0o666, 0o646, 0o664, 0o622])
def test_group_or_world_writable_file_is_refused(confdir, mode):
    path = write(confdir, GOOD, mode=mode)
    with pytest.raises(ProfileError, match="writable"):
        load(path, require_root_owned=False)


def test_writable_directory_is_refused(confdir):
    path = write(confdir, GOOD)
    confdir.chmod(0o777)
    with pytest.raises(ProfileError, match="directory"):
        load(path, require_root_owned=False)


def test_symlink_is_refused(confdir, tmp_path):
    target = write(confdir, GOOD)
    link = confdir / "link.toml"
    link.symlink_to(target)
    with pytest.raises(ProfileError, match="symlink"):
        load(link)


def test_missing_file_is_a_clear_error(confdir):
    with pytest.raises(ProfileError, match="does not exist"):
        load(confdir / "nope.toml")


def test_directory_instead_of_file_is_refused(confdir):
    (confdir / "sub").mkdir(mode=0o755)
    with pytest.raises(ProfileError, match="not a regular file"):
        load(confdir / "sub")


def test_invalid_toml_is_refused(confdir):
    with pytest.raises(ProfileError, match="not valid TOML"):
        load(write(confdir, "[profiles.agent\nargv = 1"))


def test_oversized_file_is_refused(confdir):
    with pytest.raises(ProfileError, match="larger than"):
        load(write(confdir, GOOD + "#" * 300_000))


# ---------------------------------------------------------------- refused: content


def bad(confdir: Path, body: str, match: str) -> None:
    with pytest.raises(ProfileError, match=match):
        load(write(confdir, body))


def test_shell_string_argv_is_refused(confdir):
    bad(confdir, '[profiles.a]\nargv = "claude -p --model x"\n', "argv")


def test_argv0_with_shell_syntax_is_refused(confdir):
    bad(confdir, '[profiles.a]\nargv = ["claude -p | tee /tmp/x"]\n', "shell")


@pytest.mark.parametrize("program", ["sh", "/bin/bash", "/usr/bin/env", "busybox", "sudo"])
def test_shells_and_exec_wrappers_are_refused(confdir, program):
    bad(confdir, f'[profiles.a]\nargv = ["{program}", "-c", "claude"]\n', "may not be")


def test_unknown_placeholder_is_refused(confdir):
    bad(confdir, '[profiles.a]\nargv = ["claude", "{api_key}"]\n', "unknown placeholder")


@pytest.mark.parametrize(
    "element",
    ["{model!r}", "{model:>40}", "{model.__class__}", "{0}", "{}", "{{model}}", "x{", "}"],
)
def test_format_syntax_is_refused(confdir, element):
    bad(confdir, f'[profiles.a]\nargv = ["claude", "{element}"]\n', "brace|placeholder")


def test_placeholder_in_argv0_is_refused(confdir):
    bad(confdir, '[profiles.a]\nargv = ["{model}", "-p"]\n', "argv\\[0\\]")
    bad(confdir, '[profiles.a]\nargv = ["/opt/{model}/bin"]\n', "argv\\[0\\]")


def test_empty_argv_is_refused(confdir):
    bad(confdir, "[profiles.a]\nargv = []\n", "argv")


def test_non_string_argv_element_is_refused(confdir):
    bad(confdir, '[profiles.a]\nargv = ["claude", 5]\n', "argv")


@pytest.mark.parametrize(
    "body",
    [
        'shell = true\n[profiles.a]\nargv = ["claude"]\n',
        '[profiles.a]\nargv = ["claude"]\ncommand = "rm -rf /"\n',
        '[profiles.a]\nargv = ["claude"]\n[profiles.a.limits]\nmemory = 5\n',
    ],
    ids=["top-level", "profile", "limits"],
)
def test_extra_field_is_refused(confdir, body):
    bad(confdir, body, "Extra inputs are not permitted")


@pytest.mark.parametrize("name", ["LD_PRELOAD", "PATH", "MC_SECRET_KEY", "NODE_OPTIONS", "A-B"])
def test_dangerous_env_names_are_refused(confdir, name):
    bad(confdir, f'[profiles.a]\nargv = ["claude"]\nenv_allow = ["{name}"]\n', "env_allow")


def test_relative_credential_file_is_refused(confdir):
    bad(confdir, '[profiles.a]\nargv = ["claude"]\ncredential_file = "creds.env"\n', "absolute")


def test_unknown_output_format_is_refused(confdir):
    bad(confdir, '[profiles.a]\nargv = ["claude"]\noutput_format = "text"\n', "output_format")


def test_limits_out_of_range_are_refused(confdir):
    body = '[profiles.a]\nargv = ["claude"]\n[profiles.a.limits]\nstdout_cap_bytes = 0\n'
    bad(confdir, body, "stdout_cap_bytes")


def test_bad_profile_name_is_refused(confdir):
    bad(confdir, '[profiles."Bad Name"]\nargv = ["claude"]\n', "profile name")


def test_no_profiles_is_refused(confdir):
    bad(confdir, "[profiles]\n", "profiles")


def test_error_messages_do_not_echo_values(confdir):
    body = '[profiles.a]\nargv = ["claude"]\nenv_allow = "sk-ant-api03-SECRETVALUE"\n'
    with pytest.raises(ProfileError) as info:
        load(write(confdir, body))
    assert "SECRETVALUE" not in str(info.value)


# ---------------------------------------------------------------- render_argv


def profile(*argv: str) -> Profile:
    return Profile(argv=list(argv))


def test_render_substitutes_per_element_only(tmp_path):
    rendered = render_argv(
        profile("/usr/bin/agent", "--dir={workspace}", "{model}", "--turns", "{max_turns}"),
        workspace=tmp_path,
        model="claude-sonnet-4-5",
        max_turns=3,
    )
    assert rendered == [
        "/usr/bin/agent",
        f"--dir={tmp_path}",
        "claude-sonnet-4-5",
        "--turns",
        "3",
    ]


def test_python_placeholder_is_the_worker_interpreter(tmp_path):
    assert render_argv(profile("{python}", "-V"), workspace=tmp_path)[0] == sys.executable


def test_substituted_values_are_not_rescanned(tmp_path):
    workspace = tmp_path / "w{model}{python}"
    rendered = render_argv(profile("/bin/agent", "{workspace}"), workspace=workspace, model="m")
    assert rendered[1] == str(workspace)


@pytest.mark.parametrize("model", ["--dangerously-skip-permissions", "a b", "x;rm", "m\n", ""])
def test_hostile_model_values_are_refused(tmp_path, model):
    with pytest.raises(ProfileError):
        render_argv(profile("/bin/agent", "{model}"), workspace=tmp_path, model=model)


@pytest.mark.parametrize("turns", [0, -1, 10_000, True])
def test_bad_max_turns_are_refused(tmp_path, turns):
    with pytest.raises(ProfileError):
        render_argv(profile("/bin/agent", "{max_turns}"), workspace=tmp_path, max_turns=turns)


def test_missing_value_is_refused(tmp_path):
    with pytest.raises(ProfileError, match="no value for placeholder"):
        render_argv(profile("/bin/agent", "{model}"), workspace=tmp_path)


def test_relative_workspace_is_refused():
    with pytest.raises(ProfileError, match="absolute"):
        render_argv(profile("/bin/agent"), workspace=Path("relative"))


def test_argv_is_a_list_even_when_a_string_is_passed_in_python():
    with pytest.raises(ValueError):
        Profile.model_validate({"argv": "claude -p"})
