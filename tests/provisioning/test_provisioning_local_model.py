"""The optional local model role (docs/local-models.md): off by default, pulls no
model, a hardened unit bound to loopback, and the firewall opened to the LAN only
when the server listens beyond loopback."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.provisioning import PROVISIONING, ROLES, load_yaml, render_template

ROLE = ROLES / "local_model"
UNIT = ROLE / "templates" / "mission-control-local-model.service.j2"
NFT = ROLES / "firewall" / "templates" / "nftables.conf.j2"


def test_off_by_default_and_skipped_by_the_playbook() -> None:
    defaults = load_yaml(ROLE / "defaults" / "main.yml")
    assert defaults["local_model_engine"] == "none"
    assert defaults["local_model_address"] == "127.0.0.1"
    spec = load_yaml(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert spec["local_model_engine"]["choices"] == ["none", "ollama", "llamacpp"]
    block = load_yaml(ROLE / "tasks" / "main.yml")[0]
    assert block["when"] == 'local_model_enabled | bool and local_model_engine != "none"'
    roles = [r["role"] for r in load_yaml(PROVISIONING / "site.yml")[0]["roles"]]
    assert "local_model" in roles


def test_it_pulls_no_model() -> None:
    text = (ROLE / "tasks" / "main.yml").read_text() + UNIT.read_text()
    assert "pull" not in text.replace("pulls no model", "")
    assert "huggingface" not in text.lower() and ".gguf" not in text.lower()


def render_unit(role_vars: Callable[..., dict[str, Any]], **overrides: Any) -> str:
    variables = role_vars("local_model", ansible_managed="managed", **overrides)
    return render_template(UNIT, variables)


@pytest.mark.parametrize("engine", ["ollama", "llamacpp"])
def test_the_unit_is_hardened_and_bound_to_loopback(
    role_vars: Callable[..., dict[str, Any]], engine: str, tmp_path: Path
) -> None:
    text = render_unit(
        role_vars, local_model_engine=engine, local_model_llamacpp_model="/srv/m.gguf"
    )
    for line in (
        "User=mc-local-model",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateDevices=yes",
        "CapabilityBoundingSet=",
        "IPAddressDeny=any",
        "IPAddressAllow=localhost",
        "MemoryMax=6G",
    ):
        assert line in text.splitlines(), line
    if engine == "ollama":
        assert "Environment=OLLAMA_HOST=127.0.0.1:11434" in text
    else:
        assert "--host 127.0.0.1 --port 11434 -m /srv/m.gguf" in text
    if shutil.which("systemd-analyze") is None:
        return
    unit = tmp_path / "mission-control-local-model.service"
    unit.write_text(text)
    checked = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    # the program is not installed here: only the unit's own syntax counts
    problems = [
        line
        for line in checked.stderr.splitlines()
        if "Command" not in line
        and "not executable" not in line
        and "No such file" not in line
        and "mc-local-model" not in line
    ]
    assert not problems, checked.stderr


def test_a_lan_address_lifts_the_loopback_fence(role_vars: Callable[..., dict[str, Any]]) -> None:
    text = render_unit(role_vars, local_model_engine="ollama", local_model_address="192.168.1.5")
    assert "OLLAMA_HOST=192.168.1.5:11434" in text
    assert "IPAddressDeny=any" not in text


def firewall(role_vars: Callable[..., dict[str, Any]], **local: Any) -> str:
    variables = role_vars("firewall", firewall_lan_subnets=["192.168.1.0/24"])
    variables.update(local)
    return render_template(NFT, variables)


def test_the_firewall_opens_the_port_only_beyond_loopback(
    role_vars: Callable[..., dict[str, Any]],
) -> None:
    rule = "ip saddr @lan_v4 tcp dport 11434 accept"
    assert rule not in firewall(role_vars)
    assert rule not in firewall(role_vars, local_model_engine="ollama")
    assert rule not in firewall(
        role_vars, local_model_engine="none", local_model_address="192.168.1.5"
    )
    opened = firewall(role_vars, local_model_engine="ollama", local_model_address="192.168.1.5")
    assert rule in opened
    assert "tunnel" not in opened.split(rule)[0].splitlines()[-1]


def _ollama_play(tmp_path: Path, sha256: str) -> subprocess.CompletedProcess[str]:
    """The role itself, run in check mode on this machine with engine ollama."""
    play = tmp_path / "play.yml"
    play.write_text(
        "- hosts: localhost\n"
        "  connection: local\n"
        "  gather_facts: true\n"
        "  roles:\n"
        "    - role: local_model\n"
        "      local_model_engine: ollama\n"
        f"      local_model_ollama_sha256: {sha256!r}\n"
    )
    env = {"ANSIBLE_ROLES_PATH": str(ROLES), "ANSIBLE_NOCOLOR": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        ["ansible-playbook", "--check", "-i", "localhost,", str(play)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_ollama_is_never_unpacked_without_its_checksum(tmp_path: Path) -> None:
    """Fails closed: with no SHA-256 the role stops before any download; the
    download itself is checked against it and nothing is fetched another way."""
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-playbook is not installed")
    refused = _ollama_play(tmp_path, "")
    assert refused.returncode != 0
    assert "local_model_ollama_sha256 must be the SHA-256" in refused.stdout
    assert "Download the Ollama archive" not in refused.stdout
    tasks = load_yaml(ROLE / "tasks" / "main.yml")[0]["block"]
    (ollama,) = [t for t in tasks if "Ollama from its release archive" in t["name"]]
    fetches = [
        t
        for t in ollama["block"]
        if {"ansible.builtin.get_url", "ansible.builtin.unarchive"} & set(t)
    ]
    assert [t["ansible.builtin.get_url"]["checksum"] for t in fetches] == [
        "sha256:{{ local_model_ollama_sha256 }}"
    ]
