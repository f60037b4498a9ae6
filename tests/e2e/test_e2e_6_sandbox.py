"""Check 6: the running units' exposure scores inside the Pi meet the targets,
and their sandboxes hold at run time.

The run-time probes run as the service user inside the *running* processes'
own namespaces (nsenter -t <MainPID> -m -n), and for the worker also inside
its cgroup (whose BPF programs enforce IPAddressDeny= and SocketBindDeny=).
Each probe has a control: the same probe without the sandbox succeeds, so a
refusal means the sandbox, not a broken probe."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from typing import Any

import pytest

from tests.support.e2e import MISSIONCTL, Testbed, https_client, login, scan_tcp, tcp_listener

API = "mission-control.service"
WORKER = "mission-control-worker.service"
TARGETS = {API: 1.0, WORKER: 2.0}
USER = "mission-control"
STATE = "/var/lib/mission-control"

PROBE = r"""
import errno, json, os, socket, sys
todo = json.loads(sys.argv[1])
out = {"uid": os.getuid(), "writes": {}, "connects": {}, "binds": {}, "lists": {}}
def err(e): return errno.errorcode.get(e.errno, str(e.errno))
for path in todo.get("writes", []):
    try:
        with open(path, "w") as f:
            f.write("mc-e2e")
        os.unlink(path)
        out["writes"][path] = "written"
    except OSError as e:
        out["writes"][path] = err(e)
for host, port in todo.get("connects", []):
    try:
        socket.create_connection((host, port), 2).close()
        out["connects"][f"{host}:{port}"] = "connected"
    except OSError as e:
        out["connects"][f"{host}:{port}"] = err(e) if e.errno else "timeout"
for port in todo.get("binds", []):
    s = socket.socket()
    try:
        s.bind(("0.0.0.0", port))
        out["binds"][str(port)] = "bound"
    except OSError as e:
        out["binds"][str(port)] = err(e)
    finally:
        s.close()
for path in todo.get("lists", []):
    try:
        out["lists"][path] = "listed %d" % len(os.listdir(path))
    except OSError as e:
        out["lists"][path] = err(e)
out["interfaces"] = [name for _, name in socket.if_nameindex()]
if todo.get("listen"):
    port, seconds = todo["listen"]
    server = socket.socket()
    try:
        server.bind(("0.0.0.0", port))
        server.listen(8)
        out["listening"] = port
    except OSError as e:
        out["listening"] = err(e)
    print(json.dumps(out), flush=True)
    if out["listening"] == port:
        import time
        time.sleep(seconds)
    sys.exit(0)
print(json.dumps(out))
"""


def probe_argv(
    tb: Testbed, todo: dict[str, object], *, pid: int | None = None, cgroup: str | None = None
) -> list[str]:
    """PROBE on the Pi as the service user with no privileges: inside the mount
    and network namespaces of ``pid`` if given, inside ``cgroup`` if given."""
    setpriv = (
        f"setpriv --reuid={USER} --regid={USER} --clear-groups --inh-caps=-all "
        '--bounding-set=-all --no-new-privs -- /usr/bin/python3 -c "$1" "$2"'
    )
    command = f"exec nsenter -t {pid} -m -n -- {setpriv}" if pid else f"exec {setpriv}"
    if cgroup:
        command = f"echo $$ > /sys/fs/cgroup{shlex.quote(cgroup)}/cgroup.procs && {command}"
    return ["/bin/sh", "-c", command, "-", PROBE, json.dumps(todo)]


def probe(
    tb: Testbed, todo: dict[str, object], *, pid: int | None = None, cgroup: str | None = None
) -> dict[str, Any]:
    proc = tb.run(probe_argv(tb, todo, pid=pid, cgroup=cgroup))
    result = json.loads(proc.stdout)
    assert isinstance(result, dict)
    return result


def status_fields(tb: Testbed, pid: int) -> dict[str, str]:
    text = tb.read(f"/proc/{pid}/status")
    return dict(re.findall(r"^(\w+):\s*(.*)$", text, re.M))


def exposure(tb: Testbed, unit: str) -> float:
    out = tb.run(["systemd-analyze", "security", "--no-pager", unit]).stdout
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert match, f"no score in systemd-analyze security {unit}:\n{out[-800:]}"
    return float(match.group(1))


@pytest.mark.parametrize("unit", sorted(TARGETS))
def test_running_unit_meets_its_exposure_target(testbed: Testbed, unit: str) -> None:
    """Scored by the Pi's own systemd, on the unit as loaded (drop-ins included)."""
    assert testbed.is_active(unit) == "active"
    score = exposure(testbed, unit)
    assert score <= TARGETS[unit], f"{unit}: exposure {score} > target {TARGETS[unit]}"
    print(f"{unit}: exposure {score} (target {TARGETS[unit]})")


@pytest.mark.parametrize("unit", sorted(TARGETS))
def test_running_process_has_no_privileges(testbed: Testbed, unit: str) -> None:
    pid = testbed.main_pid(unit)
    fields = status_fields(testbed, pid)
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[cap], 16) == 0, f"{unit} (pid {pid}) {cap}={fields[cap]}"
    assert fields["NoNewPrivs"] == "1", f"{unit}: NoNewPrivs={fields['NoNewPrivs']}"
    assert fields["Seccomp"] == "2", f"{unit}: no seccomp filter (Seccomp={fields['Seccomp']})"
    uid = fields["Uid"].split()
    assert len(set(uid)) == 1 and uid[0] != "0", f"{unit} runs as uid {uid}"
    print(f"{unit} pid {pid}: uid {uid[0]}, no capabilities, NoNewPrivs, seccomp filter")


def test_api_writes_only_its_state_and_has_no_network(testbed: Testbed) -> None:
    tb = testbed
    pid = tb.main_pid(API)
    forbidden = [
        "/etc/mc-e2e-probe",
        "/etc/mission-control/mc-e2e-probe",
        "/opt/mission-control/venv/mc-e2e-probe",
        "/usr/local/bin/mc-e2e-probe",
        "/var/lib/mc-e2e-probe",
        "/var/log/mc-e2e-probe",
        "/var/backups/mc-e2e-probe",
        "/home/pi/mc-e2e-probe",
        "/root/mc-e2e-probe",
        "/srv/mc-e2e-probe",
    ]
    allowed = [f"{STATE}/mc-e2e-probe", "/tmp/mc-e2e-probe"]
    targets = [[tb.pi_lan, 80], [tb["LAN_ROUTER"], 22], [tb["OUTSIDE_ADDR"], 443]]
    todo = {"writes": forbidden + allowed, "connects": targets}

    sandboxed = probe(tb, todo, pid=pid)
    assert sandboxed["uid"] != 0
    writes = sandboxed["writes"]
    for path in allowed:
        assert writes[path] == "written", f"the API cannot write {path}: {writes[path]}"
    for path in forbidden:
        assert writes[path] != "written", f"the API could write {path}"
    assert sandboxed["interfaces"] == ["lo"], f"the API sees interfaces {sandboxed['interfaces']}"
    connects = sandboxed["connects"]
    assert "connected" not in connects.values(), f"the API opened a connection: {connects}"

    # control: the same user outside the sandbox reaches the Pi's LAN address
    control = probe(tb, {"connects": [[tb.pi_lan, 80]]})
    assert control["connects"] == {f"{tb.pi_lan}:80": "connected"}, control
    print(f"API pid {pid}: writes {writes}; connections {connects}; interfaces ['lo']")


def test_worker_cannot_read_the_api_secrets(testbed: Testbed) -> None:
    tb = testbed
    secrets = f"{STATE}/secrets"
    worker = probe(tb, {"lists": [secrets]}, pid=tb.main_pid(WORKER))
    api = probe(tb, {"lists": [secrets]}, pid=tb.main_pid(API))
    assert str(api["lists"][secrets]).startswith("listed"), f"control (API): {api['lists']}"
    assert worker["lists"][secrets] in ("EACCES", "ENOENT", "EPERM"), (
        f"the worker can read the API's secrets: {worker['lists']}"
    )
    print(f"secrets: the API {api['lists'][secrets]}, the worker {worker['lists'][secrets]}")


def test_worker_egress_avoids_the_lan(testbed: Testbed) -> None:
    """IPAddressDeny= (the LAN, the tunnel: the drop-in worker-egress.conf),
    enforced on the worker's cgroup, while the internet stays reachable."""
    tb = testbed
    cgroup = tb.unit(WORKER, "ControlGroup")
    pid = tb.main_pid(WORKER)
    lan = (tb["LAN_ROUTER"], 8099)
    internet = (tb["OUTSIDE_ADDR"], 8099)
    todo = {"connects": [list(lan), list(internet)]}
    with tcp_listener(tb["NS_LAN"], *lan), tcp_listener(tb["NS_OUTSIDE"], *internet):
        control = probe(tb, todo, pid=pid)
        inside = probe(tb, todo, pid=pid, cgroup=cgroup)
    lan_key, internet_key = f"{lan[0]}:{lan[1]}", f"{internet[0]}:{internet[1]}"
    assert control["connects"] == {lan_key: "connected", internet_key: "connected"}, control
    connects = inside["connects"]
    assert connects[internet_key] == "connected", (
        f"the worker cannot reach the internet: {connects}"
    )
    assert connects[lan_key] != "connected", f"the worker reached the LAN: {connects}"
    print(f"worker cgroup {cgroup}: {connects}; outside it: {control['connects']}")


def test_a_listener_in_the_worker_is_unreachable(testbed: Testbed) -> None:
    """Whatever an agent starts listening on, nobody on the network reaches it:
    ports below 1024 need a capability the worker lacks, the firewall admits
    only ports held by nginx, sshd and WireGuard, and IPAddressDeny= drops the
    LAN's packets to the worker's sockets."""
    tb = testbed
    cgroup = tb.unit(WORKER, "ControlGroup")
    pid = tb.main_pid(WORKER)
    low = probe(tb, {"binds": [80, 443, 22]}, pid=pid, cgroup=cgroup)
    # systemd's SocketBindDeny= hook refuses first where it is enforced (EPERM,
    # systemd 257 on Debian 13); else the missing CAP_NET_BIND_SERVICE (EACCES)
    expected = "EPERM" if socket_bind_deny_enforced(tb) else "EACCES"
    assert set(low["binds"].values()) == {expected}, (
        f"the worker bound a low port (expected {expected} everywhere): {low['binds']}"
    )
    port = 8097
    if expected == "EPERM":
        # no listener can exist at all: every bind to an IP port is refused
        high = probe(tb, {"binds": [port]}, pid=pid, cgroup=cgroup)
        assert high["binds"] == {str(port): "EPERM"}, f"the worker could listen: {high}"
        print(f"worker binds refused by SocketBindDeny=: low {low['binds']}, high {high['binds']}")
        return
    argv = probe_argv(tb, {"listen": [port, 8]}, pid=pid, cgroup=cgroup)
    with subprocess.Popen(
        ["nsenter", "-t", str(tb.pi_pid), "-a", "--", *argv], stdout=subprocess.PIPE, text=True
    ) as listener:
        try:
            assert listener.stdout is not None
            started = json.loads(listener.stdout.readline())
            assert started.get("listening") == port, started
            # control: it really listens (from the Pi itself)
            assert scan_tcp(tb["NS_PI"], "127.0.0.1", [port]).open == {port}
            for ns in (tb["NS_LAN"], tb["NS_OUTSIDE"]):
                seen = scan_tcp(ns, tb.pi_lan, [port], timeout_s=1.0)
                assert not seen.open, f"a listener in the worker answered {ns}"
        finally:
            listener.kill()
    print(
        f"worker listener on {port}: reachable from the Pi's loopback only; "
        f"low ports: {low['binds']}"
    )


def socket_bind_deny_enforced(tb: Testbed) -> bool:
    """SocketBindDeny= needs a systemd built with its BPF framework: Debian 13's
    systemd 257 is (+BPF_FRAMEWORK), Debian 12's 252 is not and ignores the
    setting without a word."""
    return "+BPF_FRAMEWORK" in tb.run(["systemctl", "--version"]).stdout


def test_worker_cannot_bind_an_ip_port(testbed: Testbed) -> None:
    """SocketBindDeny=any in the worker unit: on a systemd that enforces it
    (Debian 13) every bind to an IP port is refused with EPERM. On Debian 12
    (and so Raspberry Pi OS bookworm) it is a no-op: an expected failure
    there, and the test above is what holds."""
    tb = testbed
    cgroup = tb.unit(WORKER, "ControlGroup")
    inside = probe(tb, {"binds": [8098]}, pid=tb.main_pid(WORKER), cgroup=cgroup)
    if not socket_bind_deny_enforced(tb):
        assert inside["binds"] == {"8098": "bound"}, inside
        pytest.xfail(
            "SocketBindDeny= is a no-op here: the Pi's systemd is built without "
            "BPF_FRAMEWORK (Debian 12); the worker can bind high ports, reachable "
            "from the Pi's loopback only"
        )
    assert inside["binds"] == {"8098": "EPERM"}, f"the worker could listen: {inside['binds']}"
    print(f"SocketBindDeny= enforced (systemd +BPF_FRAMEWORK): {inside['binds']}")


def test_each_agent_run_is_sandboxed_by_the_running_worker(testbed: Testbed) -> None:
    """The running worker, inside its unit (seccomp filter included),
    probed the per-run Landlock sandbox at start and reported it enforced
    (MC_RUNNER_SANDBOX=required on the Pi); ``missionctl runner sandbox-check``
    as the service user agrees (exit 0)."""
    tb = testbed
    with https_client(tb) as client:
        login(client, tb)
        health = client.get("/api/health")
    assert health.status_code == 200, health.text
    sandbox = health.json().get("runner_sandbox", {})
    assert sandbox.get("status") == "enforced", f"the worker's agent sandbox: {sandbox}"
    env = tb.read("/etc/mission-control/env")
    assert "MC_RUNNER_SANDBOX='required'" in env, "the Pi does not require the agent sandbox"
    check = tb.sh(
        f"set -a; . /etc/mission-control/env; set +a; cd /; "
        f"runuser -u {USER} -- {MISSIONCTL} runner sandbox-check",
        check=False,
    )
    assert check.returncode == 0, f"sandbox-check on the Pi: {check.stdout}{check.stderr}"
    print(f"agent runs sandboxed: Landlock ABI {sandbox.get('landlock_abi')}; {check.stdout[:300]}")
