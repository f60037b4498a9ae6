"""nginx (layers 3 and 4): the template renders with the role's defaults and
passes `nginx -t`; then the real nginx runs it in a private network namespace
(the tunnel address on its loopback) in front of a stand-in app on a unix
socket, and each control is checked by its effect: TLS versions, the local
CA's certificate, security headers, unknown hosts dropped, 429s, 413s,
credentials in URLs refused and never logged, SSE unbuffered, and a LAN
listener that answers only the health page."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.provisioning import NGINX, Netns, need_netns, need_root, need_tool, run

TUNNEL = "10.8.0.1"
HOST = "mission-control.vpn"
MC_TLS = NGINX / "mc-tls"
CHECK = NGINX / "mc-nginx-check"


def make_tls(directory: Path, names: str = HOST, ips: str = TUNNEL) -> Path:
    """A local CA and server certificate made by nginx/mc-tls itself."""
    config = directory / "mc-tls.conf"
    config.write_text(
        f'DIR={directory}/tls\nNAMES="{names}"\nIPS="{ips}"\nPERMITTED_IPS="10.8.0.0/24"\n'
        'CA_CN="Mission Control test CA"\nDAYS=30\nRENEW_DAYS=7\nCA_DAYS=60\n'
    )
    proc = run([str(MC_TLS), "--config", str(config), "ensure"])
    assert proc.returncode == 0, proc.stderr
    return directory / "tls"


def render(
    role_vars: Callable[..., dict[str, Any]], workdir: Path, tls: Path, sock: str, **extra: Any
) -> Path:
    from tests.support.provisioning import render_template

    (workdir / "temp").mkdir(parents=True, exist_ok=True)
    lan = ["80", "[::]:80"] if Path("/proc/sys/net/ipv6").exists() else ["80"]
    variables = role_vars(
        "nginx",
        nginx_temp_dir=str(workdir / "temp"),
        nginx_pid_path=str(workdir / "nginx.pid"),
        nginx_error_log=str(workdir / "error.log"),
        nginx_access_log=str(workdir / "access.log"),
        nginx_tls_certificate=str(tls / "server.crt"),
        nginx_tls_certificate_key=str(tls / "private" / "server.key"),
        nginx_upstream_socket=sock,
        nginx_status_root=str(NGINX / "status"),
        nginx_user="root",
        nginx_lan_listen=lan,
        **extra,
    )
    assert variables["nginx_tunnel_address"] == TUNNEL
    conf = workdir / "nginx.conf"
    conf.write_text(render_template(NGINX / "nginx.conf.j2", variables))
    return conf


@pytest.fixture
def rendered(role_vars: Callable[..., dict[str, Any]], tmp_path: Path) -> Path:
    need_tool("openssl")
    return render(role_vars, tmp_path, make_tls(tmp_path), "/run/mission-control/api.sock")


def test_rendered_config_passes_nginx_t(rendered: Path) -> None:
    need_root()
    need_tool("nginx", "unshare", "ip")
    proc = run([str(CHECK), "-p", str(rendered.parent), str(rendered), f"{TUNNEL}/32"])
    assert proc.returncode == 0, proc.stderr


def test_the_check_catches_a_broken_config(rendered: Path) -> None:
    """The role validates with mc-nginx-check: it must fail on what nginx
    would refuse (here the tunnel address missing, and a bad directive)."""
    need_root()
    need_tool("nginx", "unshare", "ip")
    no_address = run([str(CHECK), "-p", str(rendered.parent), str(rendered)])
    assert no_address.returncode != 0
    assert "10.8.0.1:443" in no_address.stderr
    rendered.write_text(rendered.read_text().replace("server_tokens off;", "server_tokens of;"))
    broken = run([str(CHECK), "-p", str(rendered.parent), str(rendered), f"{TUNNEL}/32"])
    assert broken.returncode != 0


@pytest.mark.parametrize(
    "directive",
    [
        "server_tokens off;",
        "ssl_protocols TLSv1.2 TLSv1.3;",
        "ssl_ecdh_curve X25519:prime256v1:secp384r1;",
        "ssl_session_tickets off;",
        "client_max_body_size 1m;",
        "limit_req_status 429;",
        "limit_conn_status 429;",
        "proxy_read_timeout 30s;",
        "proxy_send_timeout 30s;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        f"listen {TUNNEL}:443 ssl http2 default_server;",
        "return 444;",
    ],
)
def test_config_holds(rendered: Path, directive: str) -> None:
    assert directive in rendered.read_text()


def test_trixie_nginx_and_openssl_get_http2_on_and_the_hybrid_group(
    role_vars: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    """What the role picks for nginx 1.26 / OpenSSL 3.5 (Debian 13): the
    `http2 on;` directive (no deprecated `listen ... http2`) and the
    post-quantum hybrid group first, the classic curves kept."""
    need_tool("openssl")
    conf = render(
        role_vars,
        tmp_path,
        make_tls(tmp_path),
        "/run/mission-control/api.sock",
        nginx_http2_style_effective="directive",
        nginx_tls_groups_effective=["X25519MLKEM768", "X25519", "prime256v1", "secp384r1"],
    )
    text = conf.read_text()
    assert "ssl_ecdh_curve X25519MLKEM768:X25519:prime256v1:secp384r1;" in text
    assert text.count("http2 on;") == 2
    listens = [line.strip() for line in text.splitlines() if line.strip().startswith("listen")]
    assert listens and not any("http2" in line for line in listens), listens


def test_event_stream_location_is_unbuffered(rendered: Path) -> None:
    """nginx without gzip passes small SSE writes on even when buffering, so
    the live test below cannot tell; the location itself must say it."""
    text = rendered.read_text()
    block = text.split("location ^~ /api/events/ {")[1].split("}")[0]
    for directive in ("proxy_buffering off;", "proxy_cache off;", "gzip off;"):
        assert directive in block, directive
    assert "proxy_read_timeout 1h;" in block


def test_https_binds_the_tunnel_address_only(rendered: Path) -> None:
    listens = [
        line.strip()
        for line in rendered.read_text().splitlines()
        if line.strip().startswith("listen") and "ssl" in line
    ]
    assert listens and all(f"listen {TUNNEL}:443 " in line for line in listens), listens


# --- mc-tls: the local CA ---------------------------------------------------


def test_ca_is_name_constrained_and_renewal_is_idempotent(tmp_path: Path) -> None:
    need_tool("openssl")
    tls = make_tls(tmp_path)
    ca = run(["openssl", "x509", "-in", str(tls / "ca.crt"), "-noout", "-ext", "nameConstraints"])
    assert f"DNS:{HOST}" in ca.stdout and "IP:10.8.0.0/255.255.255.0" in ca.stdout
    for private in ("ca.key", "server.key"):
        assert (tls / "private" / private).stat().st_mode & 0o777 == 0o600
    assert (tls / "private").stat().st_mode & 0o777 == 0o700
    again = run([str(MC_TLS), "--config", str(tmp_path / "mc-tls.conf"), "ensure"])
    assert again.returncode == 0 and again.stdout.startswith("ok:"), again.stdout
    verify = run(["openssl", "verify", "-CAfile", str(tls / "ca.crt"), str(tls / "server.crt")])
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_certificate_is_renewed_before_expiry(tmp_path: Path) -> None:
    need_tool("openssl")
    make_tls(tmp_path)
    config = tmp_path / "mc-tls.conf"
    config.write_text(config.read_text().replace("RENEW_DAYS=7", "RENEW_DAYS=45"))
    renewed = run([str(MC_TLS), "--config", str(config), "ensure"])
    assert renewed.returncode == 0
    assert renewed.stdout.startswith("changed:") and "expires within 45 days" in renewed.stdout


def test_ca_refuses_names_outside_its_constraints(tmp_path: Path) -> None:
    need_tool("openssl")
    make_tls(tmp_path)
    config = tmp_path / "mc-tls.conf"
    config.write_text(config.read_text().replace(f'NAMES="{HOST}"', 'NAMES="www.example.com"'))
    refused = run([str(MC_TLS), "--config", str(config), "ensure"])
    assert refused.returncode != 0
    assert "does not verify" in refused.stderr


# --- the running nginx --------------------------------------------------------


class _Upstream(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        super().__init__(path, handler)
        self.connections: list[socket.socket] = []

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        self.connections.append(conn)
        return conn, address

    def die(self) -> None:
        """Like a crashed app: stop listening and drop every connection
        (nginx keeps idle keepalive connections to the app)."""
        self.shutdown()
        self.server_close()
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _App(http.server.BaseHTTPRequestHandler):
    """Stands in for the app on its unix socket."""

    protocol_version = "HTTP/1.1"

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _json(self, code: int, payload: object, extra: tuple[tuple[str, str], ...] = ()) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        # nginx must replace these, not add a second copy
        self.send_header("X-Frame-Options", "SAMEORIGIN")
        self.send_header("X-Powered-By", "stand-in")
        for key, value in extra:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._json(200, {"status": "ok"})
        elif self.path.startswith("/api/events/"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for number in range(5):  # buffered, the first would come after ~7 s
                    chunk = f"data: {number}\n\n".encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                    time.sleep(1.5)
                self.wfile.write(b"0\r\n\r\n")
            except BrokenPipeError:  # the test hangs up after the first event
                self.close_connection = True
        elif self.path == "/csp":
            self._json(200, {}, (("Content-Security-Policy", "default-src 'none'"),))
        else:
            self._json(200, {"path": self.path, "headers": dict(self.headers)})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self._json(200, {"path": self.path, "length": length})


@dataclass
class Stack:
    ns: Netns
    name: str
    workdir: Path
    ca: Path
    upstream: _Upstream
    sock: str
    nginx: subprocess.Popen[str]
    stopped: list[str] = field(default_factory=list)

    def curl(self, url: str, *args: str) -> tuple[int, dict[str, list[str]], str]:
        """One request from inside the namespace: status, headers, body."""
        proc = self.ns.exec(
            self.name,
            [
                "curl",
                "-s",
                "-i",
                "--max-time",
                "10",
                "--cacert",
                str(self.ca),
                "--resolve",
                f"{HOST}:443:{TUNNEL}",
                *args,
                url,
            ],
        )
        if proc.returncode != 0:
            return -proc.returncode, {}, proc.stderr
        head, _, body = proc.stdout.replace("\r\n", "\n").partition("\n\n")
        lines = head.splitlines()
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers.setdefault(key.strip().lower(), []).append(value.strip())
        return int(lines[0].split()[1]), headers, body


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    need_netns()
    need_tool("nginx", "curl", "openssl")
    from tests.support.provisioning import ROLES, load_yaml, resolve_vars

    workdir = tmp_path_factory.mktemp("nginx-live")
    workdir.chmod(0o755)
    tls = make_tls(workdir)
    sockdir = Path(tempfile.mkdtemp(prefix="mc-nginx-"))
    sock = str(sockdir / "api.sock")
    upstream = _Upstream(sock, _App)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()

    def role_vars(role: str, **overrides: Any) -> dict[str, Any]:
        return resolve_vars(load_yaml(ROLES / role / "defaults" / "main.yml") or {}, overrides)

    conf = render(role_vars, workdir, tls, sock)
    ns = Netns(f"mcng{os.getpid() % 100000}")
    name = ns.add("pi")
    nginx = None
    try:
        ns.sh(name, f"ip address add {TUNNEL}/32 dev lo")
        nginx = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                name,
                "nginx",
                "-p",
                str(workdir),
                "-c",
                str(conf),
                "-g",
                "daemon off;",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        stack = Stack(ns, name, workdir, tls / "ca.crt", upstream, sock, nginx)
        for _ in range(100):
            if nginx.poll() is not None:
                pytest.fail(f"nginx did not start: {nginx.stdout.read() if nginx.stdout else ''}")
            if stack.curl("http://127.0.0.1/healthz")[0] == 200:
                break
            time.sleep(0.05)
        else:
            pytest.fail("nginx did not answer within 5 s")
        yield stack
    finally:
        if nginx is not None:
            nginx.terminate()
            try:
                nginx.wait(timeout=5)
            except subprocess.TimeoutExpired:
                nginx.kill()
        ns.remove()
        with contextlib.suppress(OSError):
            upstream.die()
        shutil.rmtree(sockdir, ignore_errors=True)


def test_ui_is_served_over_verified_tls(stack: Stack) -> None:
    status, _, body = stack.curl(f"https://{HOST}/api/echo")
    assert status == 200, body
    assert json.loads(body)["path"] == "/api/echo"
    # by address too (no SNI): the default server holds the same certificate
    status, _, _ = stack.curl(f"https://{TUNNEL}/api/echo")
    assert status == 200


def test_security_headers(stack: Stack) -> None:
    _, headers, _ = stack.curl(f"https://{HOST}/api/echo")
    assert headers["strict-transport-security"] == ["max-age=63072000"]
    assert headers["x-content-type-options"] == ["nosniff"]
    assert headers["x-frame-options"] == ["DENY"], "the app's copy must be replaced"
    assert headers["referrer-policy"] == ["no-referrer"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"][0]
    assert "x-powered-by" not in headers
    assert headers["server"] == ["nginx"], "server_tokens off hides the version"


def test_the_apps_own_csp_wins(stack: Stack) -> None:
    _, headers, _ = stack.curl(f"https://{HOST}/csp")
    assert headers["content-security-policy"] == ["default-src 'none'"]


def test_unknown_host_gets_no_answer(stack: Stack) -> None:
    status, headers, _ = stack.curl(f"https://{TUNNEL}/", "--http1.1", "-H", "Host: evil.example")
    assert status < 0 and not headers, "a request for an unknown host must be dropped (444)"


def test_old_tls_is_refused(stack: Stack) -> None:
    def handshake(*flags: str) -> subprocess.CompletedProcess[str]:
        return stack.ns.exec(
            stack.name,
            [
                "openssl",
                "s_client",
                "-connect",
                f"{TUNNEL}:443",
                "-servername",
                HOST,
                "-CAfile",
                str(stack.ca),
                "-verify_return_error",
                *flags,
            ],
            input="",
        )

    assert handshake("-tls1_2").returncode == 0
    assert handshake("-tls1_3").returncode == 0
    assert handshake("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0").returncode != 0


def test_client_address_is_replaced_not_appended(stack: Stack) -> None:
    _, _, body = stack.curl(f"https://{HOST}/api/echo", "-H", "X-Forwarded-For: 6.6.6.6")
    forwarded = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
    assert forwarded["x-forwarded-for"] == TUNNEL
    assert forwarded["x-forwarded-proto"] == "https"


def test_body_over_one_mebibyte_gets_413(stack: Stack) -> None:
    big = stack.workdir / "big.bin"
    big.write_bytes(b"x" * (1024 * 1024 + 1))
    status, _, _ = stack.curl(f"https://{HOST}/api/echo", "--data-binary", f"@{big}")
    assert status == 413
    small = stack.workdir / "small.bin"
    small.write_bytes(b"x" * 1000)
    status, _, _ = stack.curl(f"https://{HOST}/api/echo", "--data-binary", f"@{small}")
    assert status == 200


def test_credentials_in_the_url_are_refused_and_never_logged(stack: Stack) -> None:
    status, _, _ = stack.curl(f"https://{HOST}/api/echo?token=leaked-secret-1")
    assert status == 400
    status, _, _ = stack.curl(f"https://{HOST}/api/echo?ticket=one-time-ticket-2")
    assert status == 200
    time.sleep(0.2)
    log = (stack.workdir / "access.log").read_text()
    assert "/api/echo" in log
    assert "leaked-secret-1" not in log and "one-time-ticket-2" not in log


def test_event_stream_is_not_buffered(stack: Stack) -> None:
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            stack.name,
            "curl",
            "-sN",
            "--max-time",
            "10",
            "--cacert",
            str(stack.ca),
            "--resolve",
            f"{HOST}:443:{TUNNEL}",
            f"https://{HOST}/api/events/stream",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    start = time.monotonic()
    assert proc.stdout is not None
    first = proc.stdout.readline()
    elapsed = time.monotonic() - start
    proc.kill()
    proc.wait()
    assert first.startswith("data: 0")
    assert elapsed < 3.0, f"first event after {elapsed:.1f} s: the stream is buffered"


def test_login_burst_gets_429_while_the_api_still_answers(stack: Stack) -> None:
    url = f"https://{HOST}/api/auth/login"
    proc = stack.ns.exec(
        stack.name,
        [
            "curl",
            "-s",
            "--cacert",
            str(stack.ca),
            "--resolve",
            f"{HOST}:443:{TUNNEL}",
            "-w",
            "%{http_code}\n",
            "-X",
            "POST",
            *(["-o", "/dev/null", url] * 12),
        ],
    )
    codes = proc.stdout.split()
    assert codes[:6] == ["200"] * 6, codes
    assert "429" in codes[6:], f"no 429 in a burst of 12 logins: {codes}"
    status, _, _ = stack.curl(f"https://{HOST}/api/echo")
    assert status == 200, "the login limit must not starve the API"


def test_lan_listener_serves_only_health_and_status(stack: Stack) -> None:
    status, _, body = stack.curl("http://127.0.0.1/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, headers, body = stack.curl("http://127.0.0.1/")
    assert status == 200 and "Mission Control" in body
    assert "script-src 'self'" in headers["content-security-policy"][0]
    for path in ("/api/echo", "/api/auth/login", "/index.html", "/status.js.map"):
        status, _, _ = stack.curl(f"http://127.0.0.1{path}")
        assert status == 404, f"LAN listener answered {path} with {status}"


def test_health_says_down_without_details_when_the_app_is_gone(stack: Stack) -> None:
    stack.upstream.die()
    Path(stack.sock).unlink()
    status, _, body = stack.curl("http://127.0.0.1/healthz")
    assert status == 503
    assert json.loads(body) == {"status": "down"}
