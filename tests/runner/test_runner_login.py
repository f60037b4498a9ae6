"""Subscription logins (app/profiles/login.py): a root-owned login directory, refused
when it could be changed by anyone but root, seen read-only by the run in its
HOME, its secret values gated out of everything stored (docs/capability.md)."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import pytest

from app.profiles.login import LoginError, load_login
from app.profiles.profiles import Profile, ProfileError, load_profiles
from app.runner.sandbox import landlock_status
from tests.support.worker import (
    Rows,
    make_settings,
    profile,
    running_worker,
    write_agent,
    write_profiles,
)

LANDLOCK = landlock_status()
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="a login directory must be owned by root: run as root (CI does)"
)
needs_landlock = pytest.mark.skipif(
    LANDLOCK.abi < 1, reason=f"no Landlock in this kernel: {LANDLOCK.reason}"
)

# values the generic credential gate does not recognise by shape: only the exact
# values read from the login file can take them out of the output
ACCESS = "claude-login-access-value-" + "a" * 24
REFRESH = "claude-login-refresh-value-" + "b" * 24
LOGIN = {
    "claudeAiOauth": {
        "accessToken": ACCESS,
        "refreshToken": REFRESH,
        "expiresAt": 1_900_000_000_000,
        "scopes": ["user:inference"],
        "subscriptionType": "max",
    }
}


def make_login(root: Path) -> Path:
    """A login directory as the owner makes it: root-owned, 0750, the file 0640."""
    login = root / "logins" / "claude"
    (login / ".claude").mkdir(parents=True)
    for folder in (root / "logins", login, login / ".claude"):
        folder.chmod(0o750)
    credentials = login / ".claude" / ".credentials.json"
    credentials.write_text(json.dumps(LOGIN))
    credentials.chmod(0o640)
    # beside it, what `claude auth login` leaves too: not for the run
    (login / ".claude.json").write_text('{"userID": "someone"}')
    (login / ".claude.json").chmod(0o640)
    return login


# ---------------------------------------------------------------- refused


@needs_root
def test_a_good_login_is_read_for_its_secret_values(tmp_path: Path) -> None:
    login = load_login(make_login(tmp_path), "claude-code")
    assert login.files == (
        (".claude/.credentials.json", str(tmp_path / "logins/claude/.claude/.credentials.json")),
    )
    assert {ACCESS, REFRESH} <= login.secret_values
    assert "max" not in login.secret_values
    assert ACCESS not in repr(login) and ACCESS not in str(login)


@needs_root
@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda d: os.chown(d, 65534, 0), "must be owned by root"),
        (lambda d: d.chmod(0o770), "group- or world-writable"),
        (lambda d: d.chmod(0o757), "group- or world-writable"),
        (lambda d: os.chown(d / ".claude", 65534, 0), "must be owned by root"),
        (lambda d: (d / ".claude").chmod(0o775), "group- or world-writable"),
        (lambda d: os.chown(d / ".claude/.credentials.json", 65534, 0), "owned by root"),
        (lambda d: (d / ".claude/.credentials.json").chmod(0o644), "readable"),
        (lambda d: (d / ".claude/.credentials.json").chmod(0o660), "group-writable"),
        (lambda d: (d / ".claude/.credentials.json").unlink(), "does not exist"),
        (lambda d: (d / ".claude/.credentials.json").write_text("token=x"), "not JSON"),
    ],
)
def test_a_login_anyone_but_root_could_change_is_refused(tmp_path, spoil, reason) -> None:
    login = make_login(tmp_path)
    spoil(login)
    with pytest.raises(LoginError, match=reason) as refused:
        load_login(login, "claude-code")
    assert ACCESS not in str(refused.value)


@needs_root
def test_a_symlinked_login_is_refused(tmp_path: Path) -> None:
    real = make_login(tmp_path)
    link = tmp_path / "logins" / "link"
    link.symlink_to(real)
    with pytest.raises(LoginError, match="symlink"):
        load_login(link, "claude-code")
    # a symlink on the way to the file, too
    (real / ".claude").rename(real / "elsewhere")
    (real / ".claude").symlink_to(real / "elsewhere")
    with pytest.raises(LoginError, match="symlink"):
        load_login(real, "claude-code")
    # and the file itself
    (real / ".claude").unlink()
    (real / "elsewhere").rename(real / ".claude")
    target = real / ".claude" / ".credentials.json"
    target.rename(real / ".claude" / "real.json")
    target.symlink_to(real / ".claude" / "real.json")
    with pytest.raises(LoginError, match="symlink"):
        load_login(real, "claude-code")


def test_a_login_is_refused_for_a_runtime_without_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no subscription login"):
        Profile(argv=["/bin/agent"], login_dir=tmp_path)
    with pytest.raises(ValueError, match="absolute"):
        Profile(argv=["/bin/agent"], runtime="codex", login_dir=Path("logins/codex"))
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o755)
    path = folder / "profiles.toml"
    path.write_text('[profiles.g]\nargv = ["/bin/agent"]\nlogin_dir = "/etc/mission-control/x"\n')
    path.chmod(0o644)
    refusal = r"profile 'g': login_dir: the generic runtime has no subscription login"
    with pytest.raises(ProfileError, match=refusal):
        load_profiles(path, require_root_owned=False)


# ---------------------------------------------------------------- a run


PROBE = r"""
import errno, json, os, sys
home = os.environ["HOME"]
link = os.path.join(home, ".claude", ".credentials.json")
real = os.path.realpath(link)
login_dir = os.path.dirname(os.path.dirname(real))
seen = {}
def attempt(name, action):
    try:
        action()
        seen[name] = "ok"
    except OSError as exc:
        seen[name] = errno.errorcode.get(exc.errno, str(exc.errno))
def read():
    with open(link) as handle:
        seen["token"] = json.load(handle)["claudeAiOauth"]["accessToken"]
def write(mode):
    with open(real, mode) as handle:
        handle.write("{}")
def replace():
    spare = os.path.join(os.environ["TMPDIR"], "spare.json")
    with open(spare, "w") as handle:
        handle.write("{}")
    os.replace(spare, real)
attempt("read", read)
attempt("write", lambda: write("w"))
attempt("append", lambda: write("a"))
attempt("truncate", lambda: os.truncate(real, 0))
attempt("replace", replace)
attempt("delete", lambda: os.unlink(real))
attempt("rename_out", lambda: os.rename(real, os.path.join(os.getcwd(), "stolen.json")))
attempt("hard_link_out", lambda: os.link(real, os.path.join(os.getcwd(), "linked.json")))
attempt("list_login_dir", lambda: os.listdir(login_dir))
attempt("read_beside", lambda: open(os.path.join(login_dir, ".claude.json")).read())
attempt("new_file_in_login", lambda: open(os.path.join(login_dir, "planted"), "w").close())
# the agent prints what it read: live output and the final result
line = {"type": "assistant", "message": {"id": "m1", "content": [
    {"type": "text", "text": "my token is " + seen.get("token", "?")}]}}
sys.stdout.write(json.dumps(line) + "\n")
sys.stdout.flush()
emit(json.dumps(seen))
"""


@needs_root
@needs_landlock
async def test_a_run_reads_its_login_and_cannot_change_it_nor_leak_it(tmp_path: Path) -> None:
    login = make_login(tmp_path)
    credentials = login / ".claude" / ".credentials.json"
    before = (credentials.read_bytes(), credentials.stat().st_mtime_ns)
    settings = make_settings(tmp_path, runner_sandbox="required")
    rows = Rows(settings.database_path)
    script = write_agent(tmp_path, "probe", PROBE)
    # the script is the program (a #! line), so the sandbox lets the run read it
    script.write_text(f"#!{sys.executable} -I\n" + script.read_text())
    script.chmod(0o755)
    spec = profile([str(script)])
    spec.update(
        runtime="claude-code",
        commands="per-agent",
        price_fallback="demo",
        login_dir=str(login),
    )
    write_profiles(tmp_path, {"sub": spec})
    agent = rows.agent(profile="sub", tools=("read_files", "write_files"))
    _, conversation = rows.task(agent)
    async with running_worker(settings, cancel_poll_s=0.2) as worker:
        assert worker.sandbox is not None and worker.sandbox.enforced
        outcome = await worker.run_once()
    assert outcome is not None and outcome.status == "SUCCEEDED", outcome
    assert conversation is not None
    row = rows.conversation(conversation)
    seen = json.loads(row["transcript"])
    denied = errno.errorcode[errno.EACCES]
    # the run reads its login through HOME ...
    assert seen["read"] == "ok"
    # ... and can do nothing else to it or its directory
    for name in ("write", "append", "truncate", "delete", "list_login_dir", "read_beside"):
        assert seen[name] == denied, (name, seen)
    for name in ("replace", "rename_out", "hard_link_out", "new_file_in_login"):
        assert seen[name] in (denied, errno.errorcode[errno.EXDEV]), (name, seen)
    assert (credentials.read_bytes(), credentials.stat().st_mtime_ns) == before
    assert sorted(p.name for p in login.iterdir()) == [".claude", ".claude.json"]
    assert not (tmp_path / "state" / "workspaces").exists() or not any(
        p.name in ("stolen.json", "linked.json")
        for p in (tmp_path / "state" / "workspaces").rglob("*")
    )
    # the token it printed is in no stored result: transcript, live output, events
    assert seen["token"] == "[REDACTED:profile_credential]"
    stored = json.dumps([dict(r) for r in rows.all("SELECT * FROM conversations")])
    stored += json.dumps([dict(r) for r in rows.events()])
    assert ACCESS not in stored and REFRESH not in stored
    live = "".join(e["payload"] for e in rows.events("conversation.output"))
    assert "my token is [REDACTED:profile_credential]" in live


# ---------------------------------------------------------------- per runtime


@needs_root
def test_each_runtime_configures_its_cli_for_the_login_it_finds(tmp_path: Path) -> None:
    from app.capability.model import Capability
    from app.runner.codex import CodexRuntime
    from app.runner.gemini import GeminiRuntime

    for runtime, relative in (
        ("codex", ".codex/auth.json"),
        ("gemini", ".gemini/oauth_creds.json"),
    ):
        root = tmp_path / runtime
        folder = root / Path(relative).parent
        folder.mkdir(parents=True)
        for part in (root, folder):
            part.chmod(0o750)
        (root / relative).write_text(json.dumps({"tokens": {"access_token": ACCESS}}))
        (root / relative).chmod(0o640)
        login = load_login(root, runtime)
        assert ACCESS in login.secret_values
        for with_login in (False, True):
            home = tmp_path / f"home-{runtime}-{with_login}"
            home.mkdir()
            if with_login:
                login.link_into(home)
                assert (home / relative).is_symlink()
            if runtime == "codex":
                CodexRuntime().prepare_home(home, {}, model="gpt-5")
                text = (home / ".codex" / "config.toml").read_text()
                assert ('cli_auth_credentials_store = "file"' in text) is with_login
            else:
                gemini = GeminiRuntime()
                none = Capability(frozenset(), shell=False, write=False, basis="test")
                gemini.command_line(["gemini"], none, max_turns=5, max_budget_usd=None)
                gemini.prepare_home(home, {}, model="gemini-2.5-pro")
                settings = json.loads((home / ".gemini" / "settings.json").read_text())
                chosen = settings["security"]["auth"]["selectedType"]
                assert chosen == ("oauth-personal" if with_login else "gemini-api-key")


@needs_root
def test_the_support_bundle_knows_the_login_values_to_remove(tmp_path: Path) -> None:
    from app.support.collect import known_secrets

    login = make_login(tmp_path)
    spec = profile(["/usr/bin/claude"])
    spec.update(runtime="claude-code", login_dir=str(login))
    write_profiles(tmp_path, {"sub": spec})
    assert {ACCESS, REFRESH} <= known_secrets(make_settings(tmp_path))
