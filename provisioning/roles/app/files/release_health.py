#!/usr/bin/python3
"""Wait, for a bounded time, until Mission Control is healthy on this host
(provisioning/update.yml runs it on the Pi with ansible.builtin.script).

Healthy: ``GET /healthz`` on the API's unix socket answers 200
``{"status": "ok"}``, every given unit is active, its main process runs the
given release (``/releases/<name>/`` in its command line) and it has not been
restarted meanwhile; all of it for ``--settle`` seconds in a row. Prints one
JSON line (healthy, seconds, detail) and exits 0 when healthy, 1 when the
deadline passed first."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time


def healthz(path: str, timeout: float) -> str | None:
    """None when ok, else what was wrong."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while len(data) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        return f"/healthz on {path}: {exc.strerror or exc}"
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    try:
        ok = status.split()[1] == "200" and json.loads(body) == {"status": "ok"}
    except (IndexError, ValueError):
        ok = False
    return None if ok else f"/healthz answered {status!r} {body[:80]!r}"


def unit_state(unit: str) -> dict[str, str]:
    out = subprocess.run(
        ["systemctl", "show", "-p", "ActiveState,MainPID,NRestarts,InvocationID", unit],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def unit_problem(unit: str, release: str | None, seen: dict[str, tuple[str, str]]) -> str | None:
    state = unit_state(unit)
    if state.get("ActiveState") != "active":
        return f"{unit} is {state.get('ActiveState', 'unknown')}"
    pid = state.get("MainPID", "0")
    if release:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            return f"{unit}: main process {pid} is gone"
        if f"/releases/{release}/" not in cmdline:
            return f"{unit} does not run release {release}: {cmdline.strip()[:200]}"
    identity = (state.get("InvocationID", ""), state.get("NRestarts", ""))
    if seen.setdefault(unit, identity) != identity:
        seen[unit] = identity
        return f"{unit} was restarted"
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--release")
    parser.add_argument("--unit", action="append", default=[])
    args = parser.parse_args()
    start = time.monotonic()
    deadline = start + args.timeout
    healthy_since: float | None = None
    seen: dict[str, tuple[str, str]] = {}
    detail = "not checked yet"
    while True:
        now = time.monotonic()
        problem = healthz(args.socket, min(5.0, max(0.5, deadline - now)))
        for unit in args.unit:
            problem = problem or unit_problem(unit, args.release, seen)
        now = time.monotonic()
        if problem is None:
            healthy_since = healthy_since if healthy_since is not None else now
            if now - healthy_since >= args.settle:
                print(
                    json.dumps(
                        {
                            "healthy": True,
                            "seconds": round(now - start, 1),
                            "detail": f"healthy for {args.settle:g} s",
                        }
                    )
                )
                return 0
            if now < deadline + args.settle:
                time.sleep(args.interval)
                continue
        else:
            healthy_since, detail = None, problem
        if now >= deadline:
            print(
                json.dumps({"healthy": False, "seconds": round(now - start, 1), "detail": detail})
            )
            return 1
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
