"""nftables (layer 1): the ruleset template passes `nft -c -f`, and loaded into
a stand-in Pi (a network namespace with a LAN link, an outside link and a
link named wg0) it lets through exactly what the threat model says: from the
world only WireGuard's UDP port, on the tunnel HTTPS and SSH, from the LAN
only the health page (and SSH only when asked for)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.provisioning import (
    ROLES,
    Netns,
    need_netns,
    need_root,
    need_tool,
    render_template,
    run,
)

TEMPLATE = ROLES / "firewall" / "templates" / "nftables.conf.j2"
LAN = "192.168.1.0/24"
TCP_PORTS = [22, 80, 443, 8080]

LISTENER = textwrap.dedent(
    """
    import socket, sys, threading
    def tcp(port):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port)); s.listen(16)
        while True:
            c, _ = s.accept(); c.close()
    def udp(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port))
        while True:
            data, peer = s.recvfrom(64); s.sendto(data, peer)
    for p in map(int, sys.argv[1].split(",")):
        threading.Thread(target=tcp, args=(p,), daemon=True).start()
    for p in map(int, sys.argv[2].split(",")):
        threading.Thread(target=udp, args=(p,), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()
    """
)

PROBE = textwrap.dedent(
    """
    import json, socket, sys, concurrent.futures as cf
    host, tcp_ports, udp_ports = sys.argv[1], sys.argv[2], sys.argv[3]
    def tcp(port):
        try:
            socket.create_connection((host, port), timeout=0.7).close(); return True
        except OSError:
            return False
    def udp(port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.7)
        try:
            s.sendto(b"hi", (host, port)); return s.recvfrom(64)[0] == b"hi"
        except OSError:
            return False
    with cf.ThreadPoolExecutor(16) as pool:
        t = dict(zip(tcp_ports.split(","), pool.map(tcp, map(int, tcp_ports.split(",")))))
        u = dict(zip(udp_ports.split(","), pool.map(udp, map(int, udp_ports.split(",")))))
    print(json.dumps({"tcp": sorted(int(p) for p, ok in t.items() if ok),
                      "udp": sorted(int(p) for p, ok in u.items() if ok)}))
    """
)


def render_ruleset(role_vars: Callable[..., dict[str, Any]], path: Path, **overrides: Any) -> Path:
    variables = role_vars("firewall", **{"firewall_lan_subnets": [LAN], **overrides})
    assert variables["firewall_wireguard_port"] in (51820, "51820")
    path.write_text(render_template(TEMPLATE, variables))
    return path


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"firewall_ssh_from_lan": True, "firewall_lan_subnets_v6": ["fd00:1::/64"]},
        {"firewall_log_drops": False, "firewall_lan_subnets": []},
    ],
    ids=["defaults", "ssh-from-lan-and-ipv6", "no-logging-no-lan"],
)
def test_ruleset_passes_nft_check(
    role_vars: Callable[..., dict[str, Any]], tmp_path: Path, overrides: dict[str, Any]
) -> None:
    need_root()
    need_tool("nft")
    ruleset = render_ruleset(role_vars, tmp_path / "nftables.conf", **overrides)
    proc = run(["nft", "-c", "-f", str(ruleset)])
    assert proc.returncode == 0, proc.stderr


def test_ruleset_text(role_vars: Callable[..., dict[str, Any]], tmp_path: Path) -> None:
    text = render_ruleset(role_vars, tmp_path / "nftables.conf").read_text()
    assert text.count("policy drop;") == 2, "input and forward must drop by default"
    assert "limit rate 10/minute burst 20 packets log prefix" in text, "drops logged, rate-limited"
    assert "icmp type echo-request limit rate" in text, "ping rate-limited"
    assert 'iifname "wg0" tcp dport { 443, 22 } accept' in text


@dataclass
class Pi:
    ns: Netns
    pi: str
    peers: dict[str, tuple[str, str]]  # role -> (namespace, the Pi's address there)
    workdir: Path

    def load(self, ruleset: Path) -> None:
        proc = self.ns.exec(self.pi, ["nft", "-f", str(ruleset)])
        assert proc.returncode == 0, proc.stderr

    def reach(self, role: str) -> dict[str, list[int]]:
        namespace, address = self.peers[role]
        proc = self.ns.exec(
            namespace,
            [
                sys.executable,
                "-c",
                PROBE,
                address,
                ",".join(map(str, TCP_PORTS)),
                "51820,5353",
            ],
        )
        assert proc.returncode == 0, proc.stderr
        result: dict[str, list[int]] = json.loads(proc.stdout)
        return result


@pytest.fixture(scope="module")
def pi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pi]:
    need_netns()
    need_tool("nft")
    ns = Netns(f"mcfw{os.getpid() % 100000}")
    listener: subprocess.Popen[str] | None = None
    try:
        pi_ns = ns.add("pi")
        peers: dict[str, tuple[str, str]] = {}
        links = {
            # role: (interface on the Pi, the Pi's address, the peer's address)
            "lan": ("eth-lan", "192.168.1.1", "192.168.1.10"),
            "outside": ("eth-out", "198.51.100.1", "198.51.100.10"),
            "tunnel": ("wg0", "10.8.0.1", "10.8.0.2"),
        }
        for role, (ifname, pi_addr, peer_addr) in links.items():
            peer_ns = ns.add(role)
            peer_if = f"v{os.getpid() % 100000}{role[:3]}"
            run(["ip", "link", "del", peer_if])
            proc = run(
                ["ip", "link", "add", peer_if, "netns", peer_ns, "type", "veth", "peer", "name",
                 ifname, "netns", pi_ns]
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            ns.sh(pi_ns, f"ip addr add {pi_addr}/24 dev {ifname} && ip link set {ifname} up")
            ns.sh(peer_ns, f"ip addr add {peer_addr}/24 dev {peer_if} && ip link set {peer_if} up")
            peers[role] = (peer_ns, pi_addr)
        listener = subprocess.Popen(
            ["ip", "netns", "exec", pi_ns, sys.executable, "-c", LISTENER,
             ",".join(map(str, TCP_PORTS)), "51820,5353"],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        yield Pi(ns, pi_ns, peers, tmp_path_factory.mktemp("nft"))
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        ns.remove()


def test_without_the_firewall_everything_is_open(pi: Pi) -> None:
    """The probe itself works: with no ruleset every port answers."""
    pi.ns.exec(pi.pi, ["nft", "flush", "ruleset"])
    assert pi.reach("outside") == {"tcp": TCP_PORTS, "udp": [5353, 51820]}


def test_the_world_reaches_wireguard_only(pi: Pi, role_vars: Callable[..., dict[str, Any]]) -> None:
    pi.load(render_ruleset(role_vars, pi.workdir / "default.nft"))
    assert pi.reach("outside") == {"tcp": [], "udp": [51820]}


def test_the_lan_reaches_the_health_page_only(
    pi: Pi, role_vars: Callable[..., dict[str, Any]]
) -> None:
    pi.load(render_ruleset(role_vars, pi.workdir / "default.nft"))
    assert pi.reach("lan") == {"tcp": [80], "udp": [51820]}


def test_the_tunnel_reaches_https_and_ssh(pi: Pi, role_vars: Callable[..., dict[str, Any]]) -> None:
    pi.load(render_ruleset(role_vars, pi.workdir / "default.nft"))
    assert pi.reach("tunnel") == {"tcp": [22, 443], "udp": [51820]}


def test_ssh_from_the_lan_only_when_asked(pi: Pi, role_vars: Callable[..., dict[str, Any]]) -> None:
    pi.load(render_ruleset(role_vars, pi.workdir / "ssh.nft", firewall_ssh_from_lan=True))
    assert pi.reach("lan") == {"tcp": [22, 80], "udp": [51820]}
    assert pi.reach("outside") == {"tcp": [], "udp": [51820]}


def test_ping_is_answered_at_a_limited_rate(
    pi: Pi, role_vars: Callable[..., dict[str, Any]]
) -> None:
    need_tool("ping")
    pi.load(render_ruleset(role_vars, pi.workdir / "default.nft"))
    namespace, address = pi.peers["outside"]
    # a flood of 60 pings: the first burst passes, the rest is dropped
    proc = pi.ns.exec(namespace, ["ping", "-c", "60", "-i", "0.01", "-W", "1", "-q", address])
    summary = proc.stdout
    received = int(summary.split(" received")[0].split()[-1])
    assert 1 <= received < 45, summary
