"""``GET /api/tasks`` and ``POST /api/tasks`` through nginx with TLS, as on the Pi.

    .venv/bin/python bench/bench_nginx_tls.py [--seconds 8]

Renders the production ``nginx/nginx.conf.j2`` with the nginx role's defaults
(certificates made by ``nginx/mc-tls``, the app on a unix socket behind it, as
``MC_LISTEN_UDS`` runs it), changing only what a benchmark on loopback needs: the
HTTPS listener on 127.0.0.1 and a free port, private log/pid/temp paths, and,
for the throughput runs, ``limit_req`` raised out of the way. A last run with the
shipped limits (``nginx_rate_api`` 20r/s, burst 40) shows the flood refused with
429 by nginx before the app. Needs nginx, openssl and wrk; prints why it skips
otherwise. Plain lines, no asserts.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from _benchlib import (  # noqa: E402
    AGENT,
    OPEN_LIMITS,
    env_for,
    free_port,
    machine,
    migrate_and_tokens,
    start_server,
    wrk,
    wrk_line,
)

ROOT = BENCH.parent
NGINX_DIR = ROOT / "nginx"
HOSTNAME = "mission-control.vpn"


def make_tls(folder: Path) -> Path:
    config = folder / "mc-tls.conf"
    config.write_text(
        f'DIR={folder}/tls\nNAMES="{HOSTNAME}"\nIPS="127.0.0.1"\nPERMITTED_IPS="127.0.0.0/8"\n'
        'CA_CN="Mission Control bench CA"\nDAYS=30\nRENEW_DAYS=7\nCA_DAYS=60\n'
    )
    subprocess.run(
        [str(NGINX_DIR / "mc-tls"), "--config", str(config), "ensure"],
        check=True,
        capture_output=True,
    )
    return folder / "tls"


def render(folder: Path, tls: Path, sock: Path, port: int, **overrides: Any) -> Path:
    from tests.support.provisioning import ROLES, load_yaml, render_template, resolve_vars

    (folder / "temp").mkdir(exist_ok=True)
    values = {
        "nginx_tunnel_address": "127.0.0.1",
        "nginx_https_port": port,
        "nginx_server_names": ["127.0.0.1", HOSTNAME],
        "nginx_temp_dir": str(folder / "temp"),
        "nginx_pid_path": str(folder / "nginx.pid"),
        "nginx_error_log": str(folder / "error.log"),
        "nginx_access_log": str(folder / "access.log"),
        "nginx_tls_certificate": str(tls / "server.crt"),
        "nginx_tls_certificate_key": str(tls / "private" / "server.key"),
        "nginx_upstream_socket": str(sock),
        "nginx_status_root": str(NGINX_DIR / "status"),
        "nginx_user": "root",
        "nginx_lan_listen": [str(free_port())],
        **overrides,
    }
    variables = resolve_vars(load_yaml(ROLES / "nginx" / "defaults" / "main.yml") or {}, values)
    conf = folder / "nginx.conf"
    conf.write_text(render_template(NGINX_DIR / "nginx.conf.j2", variables))
    return conf


@contextmanager
def nginx(conf: Path, folder: Path, port: int) -> Iterator[None]:
    process = subprocess.Popen(
        ["nginx", "-p", str(folder), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    missing = [tool for tool in ("nginx", "openssl", "wrk") if shutil.which(tool) is None]
    if missing:
        print(f"skipped: {', '.join(missing)} not installed")
        return 0
    import httpx

    with tempfile.TemporaryDirectory(prefix="mc-bench-nginx-") as name:
        folder = Path(name)
        folder.chmod(0o755)
        tls = make_tls(folder)
        sock = folder / "run" / "api.sock"
        tokens = migrate_and_tokens(
            folder, {"admin": "admin", "operator": "operate", "reader": "read"}
        )
        env = env_for(
            folder, **OPEN_LIMITS, MC_BEHIND_PROXY="true", MC_TRUSTED_PROXIES="unix", MC_TLS="true"
        )
        command = [sys.executable, "-m", "app.cli", "serve", "--uds", str(sock)]
        with start_server(command, folder, {**env, "MC_LISTEN_UDS": str(sock)}) as server:
            print(f"app (unix socket) start to READY: {server.ready_s:.3f} s")
            port = free_port()
            base = f"https://127.0.0.1:{port}"
            verify = str(tls / "ca.crt")
            open_limits = {
                "nginx_rate_api": "100000r/s",
                "nginx_burst_api": 100000,
            }
            conf = render(folder, tls, sock, port, **open_limits)
            with nginx(conf, folder, port):
                with httpx.Client(base_url=base, verify=verify, timeout=30) as client:
                    admin = {"Authorization": f"Bearer {tokens['admin']}", "Host": HOSTNAME}
                    agent = client.post("/api/agents", json=AGENT, headers=admin)
                    agent_id = agent.json()["id"]
                    for number in range(50):
                        client.post(
                            "/api/tasks",
                            json={"title": f"seeded {number}", "agent_id": agent_id},
                            headers=admin,
                        )
                    listed = client.get("/api/tasks", headers=admin).json()
                    print(f"through nginx: {len(listed['items'])} tasks listed over TLS")
                url = f"{base}/api/tasks"
                result = wrk(url, token=tokens["reader"], duration_s=args.seconds)
                print(wrk_line("nginx+TLS, wrk -t1 -c16, GET /api/tasks (50 items)", result))
                body = {"title": "through nginx", "agent_id": agent_id}
                result = wrk(
                    url,
                    token=tokens["operator"],
                    method="POST",
                    body=body,
                    duration_s=args.seconds,
                )
                print(wrk_line("nginx+TLS, wrk -t1 -c16, POST /api/tasks", result))
            # the shipped limits: one client floods, nginx answers 429 before the app
            conf = render(folder, tls, sock, port)
            with nginx(conf, folder, port):
                result = wrk(url, token=tokens["reader"], duration_s=4)
                print(
                    wrk_line(
                        "nginx+TLS with the shipped limit_req (20r/s, burst 40), flood", result
                    )
                )
                if result is not None:
                    served = result.requests - result.statuses[0]
                    print(
                        f"flood through the shipped nginx limits: {served} served,"
                        f" {result.statuses[0]} refused (429) in {result.seconds:.1f} s"
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
