"""Helpers for the end-to-end checks (tests/e2e): the harness's state, commands
run inside the stand-in Pi, clients and probes placed in the network namespaces
of the laptop, the LAN and the outside world.

A client "in a namespace" is this very process: ``netns(name)`` moves the
calling thread into the namespace (setns(2) on /run/netns/NAME) and back, and
every socket made meanwhile stays there. So the checks use ordinary Python
(httpx, sockets) and see the Pi exactly as a machine on that network would.
The fixtures that bring the testbed up are tests/e2e/conftest.py's; checks 1-3
as functions (run again after the reboot) are tests/support/e2e_checks.py."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import resource
import selectors
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "scripts" / "e2e-pi.sh"
PROBE_TIMEOUT_S = 2.0
# `up` took 4-11 min on a quiet CI machine and 25 min beside other suites
# (load 15 on 2 cores, with the hardening's AIDE and first upgrade): a bound, not a target
SETUP_TIMEOUT_S = 2700
ADMIN_PASSWORD_FILE = "/root/mission-control-admin-password"
#: the release the units run (provisioning/roles/app: releases/<name>, `current`)
MISSIONCTL = "/opt/mission-control/current/venv/bin/missionctl"
WG_ENV = {"WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


# ---------------------------------------------------------------- skipping
def skip_reason() -> str | None:
    """Why the end-to-end checks cannot run here (None: they can)."""
    if os.environ.get("MC_E2E") != "1":
        return (
            "end-to-end appliance checks run from `make test` (which sets MC_E2E=1 unless "
            "MC_E2E=0 is given); with plain pytest set MC_E2E=1 (root, network namespaces, "
            "systemd-nspawn; two Pis, about 15-25 minutes), or run scripts/e2e-pi.sh"
        )
    if not sys.platform.startswith("linux"):
        return "needs Linux (network namespaces, systemd-nspawn)"
    if os.geteuid() != 0:
        return "needs root (network namespaces, systemd-nspawn)"
    tools = ["systemd-nspawn", "nsenter", "ip", "wg", "wg-quick", "wireguard-go", "socat"]
    tools += ["ansible-playbook", "debootstrap", "ssh"]
    path = f"{os.environ.get('PATH', '')}:/usr/local/sbin:/usr/sbin:/sbin"
    missing = [t for t in tools if shutil.which(t, path=path) is None]
    if missing:
        return f"{', '.join(missing)} not installed (scripts/e2e/install-deps.sh installs them)"
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun (userspace WireGuard needs it)"
    if os.environ.get("MC_E2E_STATE"):
        return None
    probe = f"mc-e2e-skipprobe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create network namespaces here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


# ---------------------------------------------------------------- namespaces
@contextmanager
def netns(name: str) -> Iterator[None]:
    """Run the body (this thread) in network namespace ``name``."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, _CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"setns into {name}: {os.strerror(code)}")
        try:
            yield
        finally:
            if _libc.setns(own, _CLONE_NEWNET) != 0:
                code = ctypes.get_errno()
                raise OSError(code, f"setns back: {os.strerror(code)}")
    finally:
        os.close(own)
        os.close(target)


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 60)
    return subprocess.run(argv, check=False, **kwargs)


def in_ns(ns: str, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return run(["ip", "netns", "exec", ns, *argv], **kwargs)


# ---------------------------------------------------------------- the testbed
#: the second stand-in Pi's state keys start with this (scripts/e2e-pi.sh: pstate_set)
SECOND_PI = "PI2_"


@dataclass
class Testbed:
    """The running harness, described by its state.env (scripts/e2e-pi.sh up),
    as seen for one of its Pis: ``pi=""`` the first one (inventory host "pi",
    MC_E2E_SUITE, trixie by default), ``pi=SECOND_PI`` the second one (host
    "pi2", the other suite). The second Pi's own keys (``PI2_PI_PID``, ...)
    then stand in for the first one's, so every check runs on either Pi."""

    __test__ = False  # not a test class, whatever its name

    state_file: Path
    pi: str = ""
    values: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reload()

    def reload(self) -> None:
        values: dict[str, str] = {}
        for line in self.state_file.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key):
                values[key] = value
        if self.pi:
            if f"{self.pi}PI_PID" not in values:
                raise LookupError(f"the testbed has no second Pi (no {self.pi}PI_PID)")
            for key, value in list(values.items()):
                if key.startswith(self.pi):
                    values[key.removeprefix(self.pi)] = value
        self.values = values

    def second_pi(self) -> Testbed | None:
        """The testbed's second Pi (None when it runs one Pi: MC_E2E_PI2=0)."""
        try:
            return Testbed(self.state_file, SECOND_PI)
        except LookupError:
            return None

    def __getitem__(self, key: str) -> str:
        return self.values[key]

    @property
    def state_dir(self) -> Path:
        return Path(self["STATE_DIR"])

    @property
    def pi_pid(self) -> int:
        return int(self["PI_PID"])

    @property
    def tunnel(self) -> str:
        return self["TUNNEL_ADDR"]

    @property
    def pi_lan(self) -> str:
        return self["PI_LAN"]

    @property
    def ca_cert(self) -> Path:
        return Path(self["CA_CERT"])

    @property
    def host(self) -> str:
        """This Pi's name in the inventory (its artifacts' directory)."""
        return self.values.get("HOST", "pi")

    @property
    def suite(self) -> str:
        return self.values.get("SUITE", "bookworm")

    @property
    def artifacts(self) -> Path:
        """What the playbook fetched for this Pi: its peers' client configs."""
        return Path(self["ARTIFACTS"]) / self.host

    # -- inside the Pi ------------------------------------------------------
    def run(
        self, argv: list[str], *, check: bool = True, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """A command inside the Pi (all of the container's namespaces), as root."""
        proc = run(
            ["nsenter", "-t", str(self.pi_pid), "-a", "--", *argv], timeout=timeout, input=input
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"on the Pi: {shlex.join(argv)} exited {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
            )
        return proc

    def sh(self, script: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run(["/bin/sh", "-c", script], **kwargs)

    def read(self, path: str) -> str:
        return self.run(["cat", path]).stdout

    def write(self, path: str, text: str, mode: str = "0600") -> None:
        self.run(
            ["/bin/sh", "-c", f'umask 077; cat > "$1" && chmod {mode} "$1"', "-", path], input=text
        )

    def unit(self, unit: str, prop: str) -> str:
        return self.run(["systemctl", "show", "-p", prop, "--value", unit]).stdout.strip()

    def seconds(self, unit: str, prop: str) -> float:
        """A time span property (e.g. WatchdogUSec: "30s", "1min 30s", "500ms") in seconds."""
        return timespan_s(self.unit(unit, prop))

    def main_pid(self, unit: str) -> int:
        return int(self.unit(unit, "MainPID") or 0)

    def is_active(self, unit: str) -> str:
        return self.run(["systemctl", "is-active", unit], check=False).stdout.strip()

    def admin_password(self) -> str:
        """Generated on the Pi by the playbook, readable by root there only."""
        return self.read(ADMIN_PASSWORD_FILE).strip()

    # -- the harness --------------------------------------------------------
    def reboot(self, *, power_cut: bool = False) -> subprocess.CompletedProcess[str]:
        assert not self.pi, "the harness reboots the first Pi only"
        argv = [str(HARNESS), "reboot", "--state-dir", str(self.state_dir)]
        proc = run(argv + (["--power-cut"] if power_cut else []), timeout=300)
        self.reload()
        return proc


_SPANS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def timespan_s(text: str) -> float:
    """systemd's time span notation ("1min 30s", "500ms", "infinity") in seconds."""
    if text in ("", "infinity"):
        return 0.0
    if re.fullmatch(r"[0-9.]+", text.strip()):
        return float(text)  # a bare number is seconds
    total = 0.0
    for number, unit in re.findall(r"([0-9.]+)\s*(us|ms|min|s|h|d)", text):
        total += float(number) * _SPANS[unit]
    return total


def wait_for(
    what: str, check: Callable[[], Any], timeout_s: float, interval_s: float = 0.25
) -> Any:
    """Poll ``check`` until it returns something truthy; AssertionError after timeout_s."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except (OSError, httpx.HTTPError, AssertionError, ValueError) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} ({last!r})")
        time.sleep(interval_s)


# ---------------------------------------------------------------- HTTPS
def pi_tls(ca: Path) -> ssl.SSLContext:
    """Verifies the server against the Pi's CA only (the name or address must match)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@contextmanager
def https_client(tb: Testbed, ns: str | None = None) -> Iterator[httpx.Client]:
    """An HTTPS client to https://<tunnel address>/ from namespace ``ns`` (the laptop)."""
    with (
        netns(ns or tb["NS_LAPTOP"]),
        httpx.Client(
            base_url=f"https://{tb.tunnel}",
            verify=pi_tls(tb.ca_cert),
            timeout=httpx.Timeout(10.0, connect=PROBE_TIMEOUT_S),
        ) as client,
    ):
        yield client


def login(client: httpx.Client, tb: Testbed) -> dict[str, str]:
    """Log in as the first admin; returns the CSRF header for state changes."""
    response = client.post(
        "/api/auth/login", json={"username": "admin", "password": tb.admin_password()}
    )
    assert response.status_code == 200, (
        f"login through the tunnel: {response.status_code} {response.text}"
    )
    body = response.json()
    assert body["role"] == "admin", body
    return {"X-CSRF-Token": body["csrf_token"]}


def sse_events(
    response: httpx.Response, until: Callable[[dict[str, Any]], bool], deadline_s: float
) -> list[dict[str, Any]]:
    """Read SSE messages (id, event, data) until ``until(message)`` or the deadline."""
    messages: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    end = time.monotonic() + deadline_s
    for line in response.iter_lines():
        if time.monotonic() > end:
            break
        if line == "":
            if "event" in current or "data" in current:
                if "data" in current:
                    current["data"] = json.loads(current["data"])
                messages.append(current)
                if until(current):
                    return messages
            current = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            current["data"] = current.get("data", "") + value
        elif name in {"id", "event"}:
            current[name] = value
    raise AssertionError(
        f"the live feed did not deliver the expected event in {deadline_s:.0f} s; got "
        f"{[m.get('event') for m in messages]}"
    )


# ---------------------------------------------------------------- probes
def _raise_nofile(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, need)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class TcpScan:
    open: set[int]
    refused: set[int]
    silent: set[int]
    seconds: float


def scan_tcp(ns: str, host: str, ports: list[int], timeout_s: float = 0.5) -> TcpScan:
    """Parallel non-blocking connects from namespace ``ns``: open (handshake done),
    refused (RST) or silent (dropped), thousands at a time."""
    batch = max(256, min(4000, _raise_nofile(8192) - 256))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    result = TcpScan(set(), set(), set(), 0.0)
    start = time.monotonic()
    with netns(ns):
        for offset in range(0, len(ports), batch):
            chunk = ports[offset : offset + batch]
            selector = selectors.DefaultSelector()
            pending: dict[int, socket.socket] = {}
            try:
                for port in chunk:
                    sock = socket.socket(family, socket.SOCK_STREAM)
                    sock.setblocking(False)
                    code = sock.connect_ex((host, port))
                    if code in (0, errno.EINPROGRESS):
                        selector.register(sock, selectors.EVENT_WRITE, port)
                        pending[port] = sock
                    else:
                        (result.refused if code == errno.ECONNREFUSED else result.silent).add(port)
                        sock.close()
                deadline = time.monotonic() + timeout_s
                while pending and (left := deadline - time.monotonic()) > 0:
                    for key, _ in selector.select(left):
                        port = key.data
                        sock = pending.pop(port)
                        selector.unregister(sock)
                        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if code == 0:
                            result.open.add(port)
                        elif code == errno.ECONNREFUSED:
                            result.refused.add(port)
                        else:
                            result.silent.add(port)
                        sock.close()
                result.silent.update(pending)
            finally:
                for sock in pending.values():
                    sock.close()
                selector.close()
    result.seconds = time.monotonic() - start
    return result


def probe_udp(ns: str, host: str, ports: list[int], wait_s: float = 1.0) -> dict[int, str]:
    """One datagram to each port from ``ns``: 'answered' (data came back), 'refused'
    (ICMP port unreachable) or 'silent' (dropped, or a service that stays quiet)."""
    outcome: dict[int, str] = {}
    with netns(ns):
        selector = selectors.DefaultSelector()
        socks: dict[int, socket.socket] = {}
        try:
            for port in ports:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.setblocking(False)
                sock.connect((host, port))
                sock.send(udp_payload(port))
                socks[port] = sock
                selector.register(sock, selectors.EVENT_READ, port)
            deadline = time.monotonic() + wait_s
            while len(outcome) < len(socks) and (left := deadline - time.monotonic()) > 0:
                for key, _ in selector.select(left):
                    port = key.data
                    if port in outcome:
                        continue
                    try:
                        socks[port].recv(2048)
                        outcome[port] = "answered"
                    except ConnectionRefusedError:
                        outcome[port] = "refused"
                    except BlockingIOError:
                        continue
                    selector.unregister(socks[port])
            for port in socks:
                outcome.setdefault(port, "silent")
        finally:
            for sock in socks.values():
                sock.close()
            selector.close()
    return outcome


def udp_payload(port: int) -> bytes:
    """Something each common service would answer."""
    if port == 53:  # DNS query for example.com A
        return bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d0000010001")
    if port == 123:  # NTP v4 client request
        return b"\x23" + b"\x00" * 47
    if port == 161:  # SNMPv1 get-request, community "public"
        return bytes.fromhex(
            "302602010004067075626c6963a01902046d6325f3020100020100300b300906052b060102010500"
        )
    if port == 1900:
        return (
            b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
            b'MAN: "ssdp:discover"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n'
        )
    return b"mc-e2e probe\n"


# ---------------------------------------------------------------- WireGuard peers
@dataclass
class Peer:
    ns: str
    ifname: str
    conf: Path
    #: the Pi's tunnel address (traffic towards it starts a handshake)
    target: str

    def handshake(self) -> int:
        """Seconds since the epoch of the latest handshake (0: none yet)."""
        out = in_ns(self.ns, ["wg", "show", self.ifname, "latest-handshakes"], timeout=10).stdout
        values = [int(line.split()[1]) for line in out.splitlines() if len(line.split()) == 2]
        return max(values, default=0)

    def transfer(self) -> tuple[int, int]:
        """Bytes (received, sent) through this interface."""
        out = in_ns(self.ns, ["wg", "show", self.ifname, "transfer"], timeout=10).stdout.split()
        return (int(out[1]), int(out[2])) if len(out) == 3 else (0, 0)

    def kick(self) -> None:
        """Traffic towards the Pi, so the peer (re)tries a handshake."""
        in_ns(self.ns, ["ping", "-c1", "-W1", self.target], timeout=5)


@contextmanager
def wg_peer(tb: Testbed, ns: str, ifname: str, conf_text: str) -> Iterator[Peer]:
    """A userspace WireGuard client in namespace ``ns`` (interface ``ifname``), removed after."""
    directory = tb.state_dir / "wg"
    directory.mkdir(mode=0o700, exist_ok=True)
    conf = directory / f"{ifname}.conf"
    conf.write_text(conf_text)
    conf.chmod(0o600)
    env = {**os.environ, **WG_ENV}
    up = in_ns(ns, ["wg-quick", "up", str(conf)], env=env, timeout=30, stdout=None, stderr=None)
    del up  # its output goes to the test's captured output
    peer = Peer(ns, ifname, conf, tb.tunnel)
    try:
        assert in_ns(ns, ["wg", "show", ifname], timeout=10).returncode == 0, (
            f"wg-quick up {ifname} in {ns} failed"
        )
        yield peer
    finally:
        in_ns(ns, ["wg-quick", "down", str(conf)], env=env, timeout=30)
        Path(f"/var/run/wireguard/{ifname}.sock").unlink(missing_ok=True)
        conf.unlink(missing_ok=True)


def unknown_key_conf(tb: Testbed) -> str:
    """A client config with a fresh key the Pi has never heard of."""
    private = run(["wg", "genkey"]).stdout.strip()
    server_pub = tb.read("/etc/wireguard/mission-control/server.pub").strip()
    address = tb.tunnel.rsplit(".", 1)[0] + ".250"
    return (
        f"[Interface]\nPrivateKey = {private}\nAddress = {address}/32\n\n"
        f"[Peer]\nPublicKey = {server_pub}\nEndpoint = {tb.pi_lan}:{tb['WG_PORT']}\n"
        f"AllowedIPs = {tb.tunnel}/32\nPersistentKeepalive = 1\n"
    )


def client_conf(tb: Testbed, name: str) -> str:
    """The client config mc-vpn wrote on the Pi for peer ``name``."""
    return tb.read(f"/etc/wireguard/clients/{name}.conf")


# ---------------------------------------------------------------- listeners on the Pi
LISTENER_SCRIPT = r"""
import socket, sys, threading
tcp_ports = [int(p) for p in sys.argv[1].split(",")]
udp_ports = [int(p) for p in sys.argv[2].split(",")]
def tcp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    while True:
        c, _ = s.accept(); c.close()
def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        data, peer = s.recvfrom(2048); s.sendto(b"echo:" + data[:64], peer)
for p in tcp_ports: threading.Thread(target=tcp, args=(p,), daemon=True).start()
for p in udp_ports: threading.Thread(target=udp, args=(p,), daemon=True).start()
threading.Event().wait()
"""
PLANTED_TCP = [2222, 3000, 5432, 8080, 8443]
PLANTED_UDP = [53, 123, 161, 1900, 5353, 51821]


@contextmanager
def planted_listeners(tb: Testbed) -> Iterator[tuple[list[int], list[int]]]:
    """Services an admin might start on the Pi one day (TCP and UDP, every address):
    the firewall, not their absence, must keep them unreachable. Checked to
    answer from inside the Pi first, so silence from elsewhere means filtered."""
    tb.write("/run/mc-e2e-listeners.py", LISTENER_SCRIPT, "0644")
    tb.run(["systemctl", "stop", "mc-e2e-listeners.service"], check=False)
    tb.run(["systemctl", "reset-failed", "mc-e2e-listeners.service"], check=False)
    tb.run(
        [
            "systemd-run",
            "--unit=mc-e2e-listeners",
            "--collect",
            "/usr/bin/python3",
            "/run/mc-e2e-listeners.py",
            ",".join(map(str, PLANTED_TCP)),
            ",".join(map(str, PLANTED_UDP)),
        ]
    )
    try:
        wait_for(
            "the planted listeners to answer inside the Pi",
            lambda: scan_tcp(tb["NS_PI"], tb.pi_lan, PLANTED_TCP).open == set(PLANTED_TCP),
            10,
        )
        answers = probe_udp(tb["NS_PI"], tb.pi_lan, PLANTED_UDP)
        assert set(answers.values()) == {"answered"}, (
            f"planted UDP listeners inside the Pi: {answers}"
        )
        yield PLANTED_TCP, PLANTED_UDP
    finally:
        tb.run(["systemctl", "stop", "mc-e2e-listeners.service"], check=False)
        tb.run(["rm", "-f", "/run/mc-e2e-listeners.py"], check=False)


# ---------------------------------------------------------------- a listener elsewhere
@contextmanager
def tcp_listener(ns: str, address: str, port: int) -> Iterator[list[str]]:
    """A TCP server in namespace ``ns``; yields the list of peers that connected."""
    with netns(ns):
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen(16)
    server.settimeout(0.2)
    seen: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            seen.append(peer[0])
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()


# ---------------------------------------------------------------- the owner's channel
#: the Pis' one notification channel is ``json://<outside>:RECEIVER_PORT/RECEIVER_PATH``
#: (scripts/e2e-pi.sh), with quick retries and breaker (2 s, 3 failures, 10 s)
RECEIVER_PORT = 8099
RECEIVER_PATH = "mc-e2e-alerts"

RECEIVER_SCRIPT = """
import json, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        print(json.dumps({"t": time.time(), "path": self.path, **json.loads(body)}), flush=True)
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
HTTPServer.allow_reuse_address = True
server = HTTPServer(("0.0.0.0", int(sys.argv[1])), H)
print("ready", flush=True)
server.serve_forever()
"""


class Receiver:
    """The owner's phone stand-in: an HTTP server in the outside namespace; each
    message apprise's ``json://`` posts (title, message, type) with the time it came."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.got: list[dict[str, Any]] = []
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-u", "-c", RECEIVER_SCRIPT, str(RECEIVER_PORT)]
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *argv],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with suppress(ValueError):
                self.got.append(json.loads(line))

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def about(self, text: str) -> list[dict[str, Any]]:
        return [g for g in self.got if text in str(g.get("message", ""))]

    def the_one(self, title: str, body: str) -> list[dict[str, Any]]:
        """The messages with this notification's title and body."""
        return [
            g
            for g in self.got
            if g.get("title") == title and body.strip() in str(g.get("message", ""))
        ]


@contextmanager
def receiver(tb: Testbed) -> Iterator[Receiver]:
    server = Receiver(tb["NS_OUTSIDE"])
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pi_token(tb: Testbed, name: str, scope: str) -> str:
    """A new API token of ``scope``, owned by the first admin, made on the Pi."""
    create = ["runuser", "-u", "mission-control", "--", MISSIONCTL, "token", "create"]
    made = tb.run([*create, "--name", name, "--scope", scope, "--owner", "admin"]).stdout
    return next(word for word in made.split() if word.startswith("mc_"))
