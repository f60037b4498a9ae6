"""The playbook and its roles: syntax check, ansible-lint (production
profile), every role variable documented and typed in meta/argument_specs.yml,
the provisioning conventions (toggles, tags, validating handlers), and no
secret anywhere in the repository's provisioning files."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.provisioning import (
    NGINX,
    PROVISIONING,
    REPO,
    ROLES,
    SYSTEMD,
    WIREGUARD,
    load_yaml,
    need_tool,
    run,
)

ROLE_NAMES = [
    "base",
    "firewall",
    "wireguard",
    "nginx",
    "app",
    "agent_cli",
    "local_model",
    "monitoring",
    "backup",
]
SHEBANG_SHELL = re.compile(rb"#!\s*/(usr/)?bin/(env\s+)?(ba|da)?sh\b")


def shell_scripts(root: Path) -> list[Path]:
    """Every shell script under ``root``: by its shebang, or a sourced library (.sh)."""
    return [
        path
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and (path.suffix == ".sh" or SHEBANG_SHELL.match(path.read_bytes()[:64]) is not None)
    ]


SCRIPTS = [*shell_scripts(REPO / "scripts"), NGINX / "mc-tls", NGINX / "mc-nginx-check"]


def ansible_env() -> dict[str, str]:
    # Debian's ansible runs on /usr/bin/python3, never on this venv
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = ":".join(
        p for p in env.get("PATH", "").split(":") if not p.startswith(str(REPO / ".venv"))
    )
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_LOCAL_TEMP"] = env["ANSIBLE_REMOTE_TEMP"] = "/tmp"
    return env


PLAYBOOKS = ["site.yml", "update.yml"]


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_syntax(playbook: str) -> None:
    need_tool("ansible-playbook")
    proc = run(
        [
            "ansible-playbook",
            "--syntax-check",
            "-i",
            str(PROVISIONING / "inventory.example.ini"),
            str(PROVISIONING / playbook),
        ],
        env=ansible_env(),
        cwd=PROVISIONING,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ansible_lint_production_profile() -> None:
    need_tool("ansible-lint")
    proc = run(
        ["ansible-lint", "--profile", "production", "--offline", "--nocolor", "--strict"],
        env=ansible_env(),
        cwd=PROVISIONING,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Passed with production profile" in proc.stdout + proc.stderr


def test_site_runs_every_role_with_its_tag() -> None:
    plays = load_yaml(PROVISIONING / "site.yml")
    roles = plays[0]["roles"]
    assert [r["role"] for r in roles] == ROLE_NAMES
    for entry in roles:
        assert entry["tags"] == [entry["role"]]
    assert plays[0]["become"] is True


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_role_layout_and_documented_variables(role: str) -> None:
    base = ROLES / role
    for part in ("defaults/main.yml", "meta/main.yml", "meta/argument_specs.yml", "tasks/main.yml"):
        assert (base / part).is_file(), f"{role}: {part} missing"
    defaults = load_yaml(base / "defaults" / "main.yml")
    spec = load_yaml(base / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(defaults) == set(spec), (
        f"{role}: undocumented {sorted(set(defaults) - set(spec))}, "
        f"stale {sorted(set(spec) - set(defaults))}"
    )
    for name, option in spec.items():
        assert name.startswith(f"{role}_"), f"{name} is not prefixed with {role}_"
        assert option.get("type") and option.get("description"), f"{name}: type/description"
    assert f"{role}_enabled" in defaults, f"{role} has no {role}_enabled toggle"
    # every default is documented by a comment in defaults/main.yml as well
    text = (base / "defaults" / "main.yml").read_text()
    assert text.count("\n#") >= len(defaults) // 3


def test_handlers_check_before_they_reload() -> None:
    """nginx -t before the nginx reload, sshd -t before the sshd reload, and
    nft -c before any ruleset is installed."""
    nginx = load_yaml(ROLES / "nginx" / "handlers" / "main.yml")
    names = [h["name"] for h in nginx]
    assert names.index("Check the nginx configuration") < names.index("Reload nginx")
    assert (
        "mc-nginx-check"
        in nginx[names.index("Check the nginx configuration")]["ansible.builtin.command"]
    )
    base = load_yaml(ROLES / "base" / "handlers" / "main.yml")
    names = [h["name"] for h in base]
    assert names.index("Check the SSH configuration") < names.index("Reload sshd")
    tasks = {
        t["name"]: t
        for t in load_yaml(ROLES / "firewall" / "tasks" / "main.yml")[0]["block"]
        if "name" in t
    }
    template = tasks["Write /etc/nftables.conf (checked with nft -c before it is installed)"]
    assert "nft -c -f %s" in template["ansible.builtin.template"]["validate"]
    wireguard = load_yaml(ROLES / "wireguard" / "handlers" / "main.yml")
    names = [h["name"] for h in wireguard]
    check = wireguard[names.index("Check the VPN helper units")]
    assert names.index("Check the VPN helper units") < names.index(
        "Reload systemd for the VPN helper"
    )
    assert check["ansible.builtin.command"]["argv"][:2] == ["systemd-analyze", "verify"]
    assert "length > 0" in check["failed_when"]  # verify warns with exit 0
    nginx_tasks = load_yaml(ROLES / "nginx" / "tasks" / "main.yml")[0]["block"]
    conf = next(t for t in nginx_tasks if t["name"].startswith("Write nginx.conf"))
    assert conf["ansible.builtin.template"]["validate"].startswith("/usr/local/sbin/mc-nginx-check")


def test_firewall_apply_has_a_timed_rollback() -> None:
    steps = load_yaml(ROLES / "firewall" / "tasks" / "apply.yml")
    modules = [next(k for k in s if k.startswith("ansible.")) for s in steps]
    arm = next(s for s in steps if s["name"] == "Arm the rollback timer")
    argv = arm["ansible.builtin.command"]["argv"]
    assert argv[0] == "systemd-run" and any(a.startswith("--on-active=") for a in argv)
    # the rollback is armed before the new ruleset is loaded, and disarmed
    # only after a brand-new connection got through
    order = [s["name"] for s in steps]
    assert order.index("Arm the rollback timer") < order.index("Load the new ruleset")
    assert modules.index("ansible.builtin.meta") < modules.index(
        "ansible.builtin.wait_for_connection"
    )
    assert order[-1] == "Confirm the new ruleset (disarm the rollback)"


def test_secrets_are_made_on_the_pi_and_never_logged() -> None:
    wg = (ROLES / "wireguard" / "tasks" / "main.yml").read_text()
    block = wg.split("- name: Generate the server's private key on the Pi")[1].split("- name:")[0]
    assert "wg genkey" in block and "no_log: true" in block and "creates:" in block
    db = (ROLES / "app" / "tasks" / "database.yml").read_text()
    for name in ("Generate the first admin's password on the Pi", "Create the first admin"):
        assert "no_log: true" in db.split(f"- name: {name}")[1].split("- name:")[0]


KEY_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    # a WireGuard key is 43 base64 characters and "="
    re.compile(r"(PrivateKey|PresharedKey)\s*=\s*[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]="),
    re.compile(r"(?i)(password|secret|token)\s*[:=]\s*['\"]?(?!\{\{)[A-Za-z0-9+/_-]{16,}"),
]


def test_no_secret_in_the_repository() -> None:
    roots = [PROVISIONING, SYSTEMD, NGINX, WIREGUARD, REPO / "scripts"]
    files = [p for root in roots for p in root.rglob("*") if p.is_file()]
    assert files
    for path in files:
        if "artifacts" in path.parts or path.suffix in {".png", ".pyc"}:
            continue
        text = path.read_text(errors="replace")
        for pattern in KEY_PATTERNS:
            match = pattern.search(text)
            assert not match, f"{path.relative_to(REPO)}: {match.group(0)[:40]}..."


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_and_are_executable(script: Path) -> None:
    """Each shell script parses and is clean at shellcheck's warning level; a
    script with a shebang is executable (a sourced library, e.g.
    scripts/e2e/lib.sh, is not run by itself)."""
    if script.read_bytes().startswith(b"#!"):
        assert os.access(script, os.X_OK), f"{script} is not executable"
    proc = run(["bash", "-n", str(script)])
    assert proc.returncode == 0, proc.stderr
    if shutil.which("shellcheck"):
        lint = run(["shellcheck", "-S", "warning", str(script)])
        assert lint.returncode == 0, lint.stdout


def test_supported_releases_are_trixie_and_bookworm() -> None:
    defaults = load_yaml(ROLES / "base" / "defaults" / "main.yml")
    assert defaults["base_supported_releases"] == ["trixie", "bookworm"]
    for role in ROLE_NAMES:
        # the galaxy schema of ansible-lint 6.13 has no "trixie": a comment says it
        assert "trixie (Debian 13" in (ROLES / role / "meta" / "main.yml").read_text(), role


def test_sshd_drop_in_hardening(role_vars: Any) -> None:
    from tests.support.provisioning import render_template

    variables = role_vars("base", ansible_managed="managed")
    text = render_template(ROLES / "base" / "templates" / "sshd_config.j2", variables)
    for line in (
        "Compression no",
        "TCPKeepAlive no",
        "LogLevel VERBOSE",
        "MaxSessions 2",
        "AllowGroups sudo",
        "PasswordAuthentication no",
    ):
        assert f"\n{line}\n" in text, line


def test_the_playbook_installs_the_agent_cli_version_the_tests_pin() -> None:
    """The agent_cli role's default is the pin the real-CLI tests run against."""
    from tests.support.agent_cli import pinned

    defaults = load_yaml(ROLES / "agent_cli" / "defaults" / "main.yml")
    assert defaults["agent_cli_claude_code_version"] == pinned("CLAUDE_CODE_VERSION")
