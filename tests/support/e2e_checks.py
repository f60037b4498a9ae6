"""Checks 1-3 of docs/e2e.md as functions: each test runs them once, and the reboot
test runs them again on the rebooted Pi. Each returns a short summary for the
test's output (pytest -rA / -s shows it)."""

from __future__ import annotations

import time

import httpx

from tests.support.e2e import (
    PROBE_TIMEOUT_S,
    Testbed,
    https_client,
    login,
    netns,
    planted_listeners,
    probe_udp,
    scan_tcp,
    sse_events,
    unknown_key_conf,
    wait_for,
    wg_peer,
)

ALL_TCP_PORTS = list(range(1, 65536))
# the tunnel address, probed directly (the router routes the tunnel network to the Pi,
# as a LAN neighbour or an attacker who knows the address would)
TUNNEL_PORTS = [22, 80, 443, 8080]
COMMON_UDP = [53, 67, 69, 123, 137, 161, 500, 514, 1194, 1900, 4500, 5353, 11211, 51820, 51821]


def check_vpn_user_flow(tb: Testbed, label: str) -> str:
    """Check 1: from the laptop through the tunnel, as its user would."""
    with https_client(tb) as client:
        # verified TLS (the Pi's CA, the tunnel address in the certificate): the
        # UI's login page, with the proxy's headers
        page = client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"], (
            f"the UI's login page through the tunnel: {page.status_code} {page.headers}"
        )
        assert page.headers.get("strict-transport-security"), "no HSTS header from nginx"
        # the certificate really comes from the Pi's CA: the system's CAs refuse it
        with httpx.Client(base_url=f"https://{tb.tunnel}", timeout=PROBE_TIMEOUT_S) as plain:
            try:
                plain.get("/healthz")
            except httpx.ConnectError as exc:
                assert "CERTIFICATE_VERIFY_FAILED" in str(exc), exc
            else:
                raise AssertionError("the Pi's certificate verified without its CA")

        csrf = login(client, tb)
        ui = client.get("/ui/")
        assert ui.status_code == 200 and "text/html" in ui.headers["content-type"], (
            f"the UI (logged in) through the tunnel: {ui.status_code}"
        )
        name = f"e2e {label} {int(time.time() * 1000) % 10**9}"
        created = client.post(
            "/api/agents",
            json={"name": name, "role": "end-to-end tester", "model": "demo-1", "profile": "demo"},
            headers=csrf,
        )
        assert created.status_code == 201, f"create agent: {created.status_code} {created.text}"
        agent_id = created.json()["id"]

        ticket = client.post("/api/events/ticket", headers=csrf)
        assert ticket.status_code == 200, f"event ticket: {ticket.status_code} {ticket.text}"
        stream_timeout = httpx.Timeout(10.0, connect=PROBE_TIMEOUT_S, read=20.0)
        with client.stream(
            "GET",
            "/api/events/stream",
            params={"ticket": ticket.json()["ticket"]},
            timeout=stream_timeout,
        ) as feed:
            assert feed.status_code == 200, f"live feed: {feed.status_code}"
            assert feed.headers["content-type"].startswith("text/event-stream")
            task = client.post(
                "/api/tasks",
                json={
                    "title": f"Summarise the e2e backlog ({label})",
                    "description": "Three items are open; list them briefly.",
                    "agent_id": agent_id,
                },
                headers=csrf,
            )
            assert task.status_code == 201, f"create task: {task.status_code} {task.text}"
            task_id = task.json()["id"]

            def done(message: dict[str, object]) -> bool:
                data = message.get("data")
                return (
                    message.get("event") == "conversation.succeeded"
                    and isinstance(data, dict)
                    and data.get("payload", {}).get("task_id") == task_id
                )

            messages = sse_events(feed, done, deadline_s=60)
        kinds = [m.get("event") for m in messages]
        for wanted in ("task.created", "conversation.started", "conversation.succeeded"):
            assert wanted in kinds, f"the live feed missed {wanted}: {kinds}"

        final = client.get(f"/api/tasks/{task_id}")
        assert final.status_code == 200 and final.json()["status"] == "succeeded", final.text
        runs = client.get(f"/api/tasks/{task_id}/conversations").json()["items"]
        assert runs, "the task has no conversation"
        detail = client.get(f"/api/conversations/{runs[0]['id']}").json()
        assert detail["status"] == "SUCCEEDED", detail
        assert detail["transcript"].startswith("Demo agent"), detail["transcript"][:200]
    return f"agent {agent_id}, task {task_id}: {len(messages)} live events {kinds}"


def check_lan(tb: Testbed) -> str:
    """Check 2: a LAN host that is not a VPN peer sees the health page, nothing else."""
    ns = tb["NS_LAN"]
    with (
        netns(ns),
        httpx.Client(base_url=f"http://{tb.pi_lan}", timeout=PROBE_TIMEOUT_S) as client,
    ):
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}, (
            f"/healthz from the LAN: {health.status_code} {health.text}"
        )
        page = client.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        for path in [
            "/api/health",
            "/api/agents",
            "/api/openapi.json",
            "/ui/",
            "/api/events/stream",
        ]:
            response = client.get(path)
            assert response.status_code == 404, f"GET {path} from the LAN: {response.status_code}"
        login_attempt = client.post("/api/auth/login", json={"username": "admin", "password": "x"})
        assert login_attempt.status_code in (404, 405), (
            f"login from the LAN: {login_attempt.status_code}"
        )

    with planted_listeners(tb) as (tcp, udp):
        scan = scan_tcp(ns, tb.pi_lan, ALL_TCP_PORTS)
        assert scan.open == {80}, (
            f"from the LAN only the health page (80) may answer; open: {sorted(scan.open)}"
        )
        for port in [22, 443, *tcp]:
            assert port not in scan.open, port
        # aimed at the tunnel address, the LAN still gets the health listener only
        direct = scan_tcp(ns, tb.tunnel, TUNNEL_PORTS)
        assert direct.open <= {80}, (
            f"the tunnel address answered from the LAN: {sorted(direct.open)}"
        )
        with (
            netns(ns),
            httpx.Client(base_url=f"http://{tb.tunnel}", timeout=PROBE_TIMEOUT_S) as client,
        ):
            assert client.get("/api/agents").status_code == 404
            assert client.get("/ui/").status_code == 404
        answers = probe_udp(ns, tb.pi_lan, udp)
        assert set(answers.values()) == {"silent"}, f"UDP from the LAN: {answers}"
    return (
        f"LAN scan of 65535 TCP ports in {scan.seconds:.1f} s: open {sorted(scan.open)}, "
        f"{len(scan.silent)} dropped, {len(scan.refused)} refused; planted TCP {tcp} and "
        f"UDP {udp} unreachable; on the tunnel address {TUNNEL_PORTS}: "
        f"{sorted(direct.open) or 'nothing'} open (the LAN health listener)"
    )


def check_outside(tb: Testbed) -> str:
    """Check 3: from the internet only WireGuard's UDP port is open, and a
    handshake with a key the Pi does not know gets no answer."""
    ns = tb["NS_OUTSIDE"]
    with planted_listeners(tb) as (_, udp):
        scan = scan_tcp(ns, tb.pi_lan, ALL_TCP_PORTS)
        assert not scan.open, f"TCP ports open to the internet: {sorted(scan.open)}"
        direct = scan_tcp(ns, tb.tunnel, TUNNEL_PORTS)
        assert not direct.open, f"the tunnel address answered from outside: {sorted(direct.open)}"
        answers = probe_udp(ns, tb.pi_lan, sorted(set(COMMON_UDP + udp)))
        talking = {p: a for p, a in answers.items() if a != "silent"}
        assert not talking, f"UDP ports answering the internet: {talking}"

    # WireGuard's port is open to the world: a known peer gets through from outside
    travel = (tb.artifacts / "travel.conf").read_text()
    with wg_peer(tb, ns, f"{tb['IFTAG']}-trv", travel) as peer:
        wait_for(
            "a handshake of the travel peer from outside",
            lambda: peer.kick() or peer.handshake(),
            15,
        )
        with https_client(tb, ns) as client:
            assert client.get("/healthz").status_code == 200

    # an unknown key: initiations go out, nothing ever comes back
    with wg_peer(tb, ns, f"{tb['IFTAG']}-unk", unknown_key_conf(tb)) as stranger:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            stranger.kick()
        received, sent = stranger.transfer()
        assert stranger.handshake() == 0, "the Pi completed a handshake with an unknown key"
        assert sent > 0, "the unknown peer sent nothing (the probe did not run)"
        assert received == 0, f"the Pi answered an unknown key: {received} bytes came back"
    return (
        f"outside scan of 65535 TCP ports in {scan.seconds:.1f} s: none open "
        f"({len(scan.silent)} dropped, {len(scan.refused)} refused); UDP {sorted(answers)} silent; "
        f"known peer handshakes from outside; unknown key: {sent} bytes sent, 0 received"
    )
