"""A private mc-vpn state and the real root helper (scripts/mc-vpn-helper) on a
temporary socket, for the tests of the VPN peers API and page.

mc-vpn runs for real (keys from `wg genkey`, wg0.conf rendered) against a state
directory of the test's; its interface is never up, so `apply` only says so.
The helper runs as the test's user with `--any-unit` (the test is not in
mission-control.service's cgroup); everything else is the program the Pi runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MC_VPN = REPO / "scripts" / "mc-vpn"
HELPER = REPO / "scripts" / "mc-vpn-helper"

CLIENT_TEMPLATE = """# Mission Control VPN, peer "@@NAME@@" (vpn.example.test:51820)
[Interface]
PrivateKey = @@CLIENT_PRIVATE_KEY@@
Address = @@CLIENT_ADDRESS@@/32

[Peer]
PublicKey = @@SERVER_PUBLIC_KEY@@
PresharedKey = @@PRESHARED_KEY@@
Endpoint = vpn.example.test:51820
AllowedIPs = 10.8.0.1/32
PersistentKeepalive = 25
"""

SERVER_TEMPLATE = """[Interface]
PrivateKey = @@SERVER_PRIVATE_KEY@@
Address = 10.8.0.1/24
ListenPort = 51820
"""


def need_vpn_tools() -> None:
    """Skip unless mc-vpn can run here: it needs root and wireguard-tools."""
    if os.geteuid() != 0:
        pytest.skip("mc-vpn runs as root only (run the VPN tests as root, as CI does)")
    if shutil.which("wg") is None or shutil.which("wg-quick") is None:
        pytest.skip("wireguard-tools not installed (scripts/e2e/install-deps.sh)")


@dataclass(frozen=True)
class VpnState:
    root: Path
    conf: Path

    @property
    def peers(self) -> Path:
        return self.root / "state" / "peers"

    @property
    def clients(self) -> Path:
        return self.root / "clients"

    def env(self) -> dict[str, str]:
        return {**os.environ, "MC_VPN_CONF": str(self.conf)}

    def mc_vpn(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(MC_VPN), *args], env=self.env(), capture_output=True, text=True, check=False
        )


def make_state(root: Path) -> VpnState:
    state = root / "state"
    state.mkdir(mode=0o700, parents=True)
    iface = f"mcwgh{os.getpid() % 10000}"
    conf = state / "mc-vpn.conf"
    conf.write_text(
        f"IFACE={iface}\nSTATE_DIR={state}\nCLIENT_DIR={root / 'clients'}\n"
        f"WG_CONF={root / 'wg0.conf'}\nSUBNET_PREFIX=10.8.0\nSERVER_HOST=1\nQR_PNG=no\n"
    )
    (state / "wg0.conf.tmpl").write_text(SERVER_TEMPLATE)
    (state / "client.conf.tmpl").write_text(CLIENT_TEMPLATE)
    key = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout
    (state / "server.key").write_text(key)
    pub = subprocess.run(["wg", "pubkey"], input=key, capture_output=True, text=True, check=True)
    (state / "server.pub").write_text(pub.stdout)
    return VpnState(root, conf)


@contextmanager
def running_helper(
    state: VpnState, socket_path: Path, allow: tuple[str, ...] = ()
) -> Iterator[Path]:
    """The real helper serving ``socket_path``; by default it allows the test's
    own uid from any unit (``allow`` replaces those two checks' arguments)."""
    checks = allow or ("--allow-uid", str(os.getuid()), "--any-unit")
    argv = [sys.executable, "-I", str(HELPER), *checks, "--mc-vpn", str(MC_VPN)]
    argv += ["--listen", str(socket_path)]
    log = state.root / "helper.log"
    with log.open("ab") as sink:
        proc = subprocess.Popen(argv, env=state.env(), stdout=subprocess.DEVNULL, stderr=sink)
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mc-vpn-helper did not start: {log.read_text()!r}")
            time.sleep(0.02)
        yield socket_path
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        socket_path.unlink(missing_ok=True)
