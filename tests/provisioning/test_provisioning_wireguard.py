"""WireGuard (layer 2): the server and client templates with the role's
defaults, and scripts/mc-vpn (add, list, show, revoke, render, status, apply)
run for real against a private state directory; `apply` against a userspace
WireGuard interface in a network namespace."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.provisioning import (
    REPO,
    ROLES,
    WIREGUARD,
    Netns,
    need_netns,
    need_root,
    need_tool,
    render_template,
    run,
)

MC_VPN = REPO / "scripts" / "mc-vpn"


@dataclass
class Vpn:
    root: Path
    env: dict[str, str]
    iface: str

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def clients(self) -> Path:
        return self.root / "clients"

    @property
    def wg_conf(self) -> Path:
        return self.root / "wg0.conf"

    def __call__(self, *args: str, netns: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = [str(MC_VPN), *args]
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        return run(argv, env=self.env)

    def ok(self, *args: str, netns: str | None = None) -> str:
        proc = self(*args, netns=netns)
        assert proc.returncode == 0, f"mc-vpn {' '.join(args)}: {proc.stderr}"
        return proc.stdout


@pytest.fixture
def vpn(role_vars: Callable[..., dict[str, Any]], tmp_path: Path) -> Vpn:
    need_root()
    need_tool("wg", "wg-quick")
    variables = role_vars(
        "wireguard",
        wireguard_endpoint_host="vpn.example.net",
        wireguard_state_dir=str(tmp_path / "state"),
        wireguard_client_dir=str(tmp_path / "clients"),
        ansible_managed="test",
    )
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    iface = f"mcwg{os.getpid() % 100000}"
    settings = render_template(ROLES / "wireguard" / "templates" / "mc-vpn.conf.j2", variables)
    assert "SUBNET_PREFIX=10.8.0\n" in settings and "SERVER_HOST=1\n" in settings
    settings = settings.replace("IFACE=wg0", f"IFACE={iface}").replace(
        "WG_CONF=/etc/wireguard/wg0.conf", f"WG_CONF={tmp_path}/wg0.conf"
    )
    (state / "mc-vpn.conf").write_text(settings)
    (state / "wg0.conf.tmpl").write_text(render_template(WIREGUARD / "wg0.conf.j2", variables))
    (state / "client.conf.tmpl").write_text(
        render_template(WIREGUARD / "client.conf.j2", variables)
    )
    key = run(["wg", "genkey"]).stdout
    (state / "server.key").write_text(key)
    (state / "server.pub").write_text(run(["wg", "pubkey"], input=key).stdout)
    env = {**os.environ, "MC_VPN_CONF": str(state / "mc-vpn.conf")}
    return Vpn(tmp_path, env, iface)


def strip(path: Path) -> str:
    """`wg-quick strip` parses a config the way wg-quick would load it."""
    proc = run(["wg-quick", "strip", str(path)])
    assert proc.returncode == 0, f"{path.name}: {proc.stderr}"
    return proc.stdout


def peer_blocks(config: str) -> dict[str, dict[str, str]]:
    peers: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in config.splitlines():
        if line.startswith("[Peer]"):
            current = {}
        elif current is not None and " = " in line:
            key, value = line.split(" = ", 1)
            current[key] = value
            if key == "PublicKey":
                peers[value] = current
    return peers


def test_add_makes_a_working_pair_of_configs(vpn: Vpn) -> None:
    out = vpn.ok("add", "laptop", "--no-apply")
    assert "added: laptop 10.8.0.2" in out
    client = vpn.clients / "laptop.conf"
    assert client.stat().st_mode & 0o777 == 0o600
    assert vpn.wg_conf.stat().st_mode & 0o777 == 0o600
    assert vpn.clients.stat().st_mode & 0o777 == 0o700
    server = strip(vpn.wg_conf)
    client_text = strip(client)
    # the client's private key belongs to the server's peer, with the same PSK
    client_key = client_text.split("PrivateKey = ")[1].split()[0]
    client_pub = run(["wg", "pubkey"], input=client_key + "\n").stdout.strip()
    peer = peer_blocks(server)[client_pub]
    assert peer["AllowedIPs"] == "10.8.0.2/32"
    assert peer["PresharedKey"] == client_text.split("PresharedKey = ")[1].split()[0]
    # and the client reaches the Pi only, at the configured endpoint
    assert "Endpoint = vpn.example.net:51820" in client_text
    assert "AllowedIPs = 10.8.0.1/32" in client_text
    server_pub = (vpn.state / "server.pub").read_text().strip()
    assert f"PublicKey = {server_pub}" in client_text
    assert "@@" not in server + client_text


def test_addresses_are_allocated_and_checked(vpn: Vpn) -> None:
    vpn.ok("add", "laptop", "--no-apply")
    vpn.ok("add", "phone", "--ip", "10.8.0.20", "--no-apply")
    assert "10.8.0.3" in vpn.ok("add", "tablet", "--no-apply")
    for bad in (["--ip", "10.8.0.20"], ["--ip", "10.9.0.5"], ["--ip", "10.8.0.1"]):
        proc = vpn("add", "other", *bad, "--no-apply")
        assert proc.returncode != 0, bad
    assert vpn("add", "laptop", "--no-apply").returncode != 0, "duplicate name accepted"
    assert sorted(p.name for p in (vpn.state / "peers").iterdir()) == ["laptop", "phone", "tablet"]


@pytest.mark.parametrize(
    "name",
    ["", "-x", "Laptop", "a" * 32, "../etc", "x;reboot", "x y", "$(id)", "ph\none", "é"],
)
def test_bad_names_are_refused(vpn: Vpn, name: str) -> None:
    proc = vpn("add", name, "--no-apply")
    assert proc.returncode != 0
    assert not (vpn.state / "peers").exists() or not any((vpn.state / "peers").iterdir())
    assert vpn("show", name).returncode != 0
    assert vpn("revoke", name).returncode != 0


def test_render_is_idempotent_and_revoke_removes_the_peer(vpn: Vpn) -> None:
    vpn.ok("add", "laptop", "--no-apply")
    vpn.ok("add", "phone", "--no-apply")
    assert vpn.ok("render").startswith("unchanged")
    phone_pub = (vpn.state / "peers" / "phone" / "public.key").read_text().strip()
    assert phone_pub in vpn.wg_conf.read_text()
    assert "revoked: phone" in vpn.ok("revoke", "phone", "--no-apply")
    assert phone_pub not in vpn.wg_conf.read_text()
    assert not (vpn.clients / "phone.conf").exists()
    assert len(peer_blocks(strip(vpn.wg_conf))) == 1
    assert vpn.ok("render").startswith("unchanged")


def test_show_list_and_status_never_print_keys(vpn: Vpn) -> None:
    vpn.ok("add", "laptop", "--no-apply")
    shown = vpn.ok("show", "laptop")
    assert shown == (vpn.clients / "laptop.conf").read_text()
    secrets = [
        (vpn.state / "server.key").read_text().strip(),
        (vpn.state / "peers" / "laptop" / "private.key").read_text().strip(),
        (vpn.state / "peers" / "laptop" / "psk").read_text().strip(),
    ]
    listing = vpn.ok("list")
    assert "laptop" in listing and "10.8.0.2" in listing
    status = vpn.ok("status", "--json")
    document = json.loads(status)
    assert document["up"] is False
    assert document["peers"] == [
        {"name": "laptop", "address": "10.8.0.2", "latest_handshake": 0, "rx_bytes": 0,
         "tx_bytes": 0}
    ]  # fmt: skip
    output = vpn.root / "peers.json"
    vpn.ok("status", "--json", "--output", str(output))
    assert output.stat().st_mode & 0o777 == 0o640
    for secret in secrets:
        assert secret not in listing + status + output.read_text()


def test_qr_code_for_phones(vpn: Vpn) -> None:
    need_tool("qrencode")
    vpn.ok("add", "phone", "--no-apply")
    png = vpn.clients / "phone.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_mode & 0o777 == 0o600
    assert "█" in vpn.ok("show", "phone", "--qr") or "▀" in vpn.ok("show", "phone", "--qr")


def test_refuses_to_run_unprivileged(vpn: Vpn) -> None:
    proc = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(MC_VPN), "list"])
    assert proc.returncode != 0 and "run as root" in proc.stderr


def test_apply_changes_peers_without_dropping_the_tunnel(vpn: Vpn) -> None:
    """With a real (userspace) WireGuard interface: `apply` loads peers with
    `wg syncconf`; the interface and its key stay, a revoked peer is gone."""
    need_netns()
    need_tool("wireguard-go")
    if not Path("/dev/net/tun").exists():
        pytest.skip("no /dev/net/tun for wireguard-go")
    ns = Netns(f"mcvpn{os.getpid() % 100000}")
    try:
        name = ns.add("pi")
        # wireguard-go daemonises: its child keeps no pipe of ours open
        go = subprocess.run(
            ["ip", "netns", "exec", name, "wireguard-go", vpn.iface],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )
        assert go.returncode == 0
        for _ in range(50):
            if ns.exec(name, ["wg", "show", vpn.iface]).returncode == 0:
                break
            time.sleep(0.05)
        vpn.ok("add", "laptop", "--no-apply")
        assert "applied" in vpn.ok("apply", netns=name)
        vpn.ok("add", "phone", netns=name)
        peers = ns.exec(name, ["wg", "show", vpn.iface, "peers"]).stdout.split()
        assert len(peers) == 2
        listen = ns.exec(name, ["wg", "show", vpn.iface, "listen-port"]).stdout.strip()
        assert listen == "51820"
        server_pub = (vpn.state / "server.pub").read_text().strip()
        assert ns.exec(name, ["wg", "show", vpn.iface, "public-key"]).stdout.strip() == server_pub
        psks = ns.exec(name, ["wg", "show", vpn.iface, "preshared-keys"]).stdout
        assert "(none)" not in psks
        vpn.ok("revoke", "phone", netns=name)
        phone_gone = ns.exec(name, ["wg", "show", vpn.iface, "peers"]).stdout.split()
        assert len(phone_gone) == 1
        status = json.loads(vpn.ok("status", "--json", netns=name))
        assert status["up"] is True and [p["name"] for p in status["peers"]] == ["laptop"]
    finally:
        ns.remove()
        sock = Path(f"/var/run/wireguard/{vpn.iface}.sock")
        if sock.exists():
            sock.unlink()
