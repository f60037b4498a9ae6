"""Check 13: an admin adds a WireGuard peer from the UI's API, through the tunnel,
with a step-up; the configuration shown once brings a new WireGuard interface up
on a device and reaches the UI; revoking it from the UI cuts it off at once.

The request goes from the unprivileged API (no network, no capability) to the
root helper (mission-control-vpn-helper.socket, docs/vpn.md); the helper answers
only the API's unit: not root, not another process of the API's user.
"""

from __future__ import annotations

import json
import re
import time

import httpx

from tests.support.e2e import Testbed, https_client, login, wait_for, wg_peer

URL = "/api/vpn/peers"
NAME = "tablet"
PROBE = (
    "import socket\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "s.connect('/run/mission-control-vpn-helper.sock')\n"
    "s.sendall(b'list\\n')\n"
    "print(s.recv(65536).decode())\n"
)


def _helper_answer(tb: Testbed, *as_user: str) -> dict[str, object]:
    argv = ["python3", "-c", PROBE]
    if as_user:  # a transient unit: the API's user, but not the API's unit
        argv = ["systemd-run", "--wait", "--pipe", "--quiet", *as_user, *argv]
    answer: dict[str, object] = json.loads(tb.run(argv).stdout)
    return answer


def test_a_peer_added_in_the_ui_connects_and_a_revoked_one_cannot(testbed: Testbed) -> None:
    tb = testbed
    ns = tb["NS_OUTSIDE"]  # the new device: a tablet on mobile data
    assert tb.is_active("mission-control-vpn-helper.socket") == "active"
    security = tb.run(
        ["systemd-analyze", "security", "--no-pager", "mission-control-vpn-helper.service"],
        check=False,
    ).stdout
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security)

    # only the API's unit may ask the helper
    as_root = _helper_answer(tb)
    assert as_root["ok"] is False and "may not use" in str(as_root["message"]), as_root
    same_user = _helper_answer(tb, "--uid=mission-control", "--gid=mission-control")
    assert same_user["ok"] is False, same_user
    assert "not in mission-control.service" in str(same_user["message"]), same_user

    tb.run(["mc-vpn", "revoke", NAME], check=False)  # a leftover of an earlier attempt
    with https_client(tb) as laptop:
        csrf = login(laptop, tb)
        no_step_up = laptop.post(URL, json={"name": NAME, "password": "wrong"}, headers=csrf)
        assert no_step_up.status_code in (401, 422), no_step_up.text
        start = time.monotonic()
        added = laptop.post(URL, json={"name": NAME, "password": tb.admin_password()}, headers=csrf)
        add_s = time.monotonic() - start
        assert added.status_code == 201, added.text
    peer = added.json()
    config = peer["config"]
    key = re.search(r"PrivateKey = (\S+)", config)
    assert key and peer["qr_svg"].startswith("<svg"), peer
    public = tb.read(f"/etc/wireguard/mission-control/peers/{NAME}/public.key").strip()
    assert public in tb.run(["wg", "show", "wg0", "peers"]).stdout, "not loaded into wg0"
    # the private key was handed over once: not on the Pi, its database or its logs
    kept = tb.run(
        ["grep", "-rlF", key.group(1), "/etc/wireguard", "/var/lib/mission-control", "/var/log",
         "/run/log"],
        check=False,
    )  # fmt: skip
    assert kept.returncode == 1, f"the private key is on the Pi: {kept.stdout}"

    try:
        with wg_peer(tb, ns, f"{tb['IFTAG']}-tab", config) as tablet:
            start = time.monotonic()
            wait_for("the tablet's handshake", lambda: tablet.kick() or tablet.handshake(), 10)
            connected_s = time.monotonic() - start
            with https_client(tb, ns) as client:
                assert client.get("/healthz").status_code == 200
                page = client.get("/", headers={"Accept": "text/html"})
                assert page.status_code == 200 and "Mission Control" in page.text
            with https_client(tb) as laptop:
                csrf = login(laptop, tb)
                listed = laptop.get(URL).json()
                mine = [p for p in listed["report"]["status"]["peers"] if p["name"] == NAME]
                assert listed["source"] == "helper" and mine, listed
                assert mine[0]["latest_handshake"] > 0, mine
                revoked = laptop.delete(f"{URL}/{NAME}", headers=csrf)
                assert revoked.status_code == 200, revoked.text
            assert public not in tb.run(["wg", "show", "wg0", "peers"]).stdout
            with https_client(tb, ns) as client:
                try:
                    client.get("/healthz", timeout=2.0)
                except httpx.HTTPError:
                    pass
                else:
                    raise AssertionError("the revoked tablet still reached the Pi")
        with wg_peer(tb, ns, f"{tb['IFTAG']}-tab", config) as again:
            deadline = time.monotonic() + 7
            while time.monotonic() < deadline:
                again.kick()
            received, sent = again.transfer()
            assert again.handshake() == 0, "the revoked tablet completed a handshake"
            assert sent > 0 and received == 0, f"revoked tablet: {sent} bytes out, {received} in"
    finally:
        tb.run(["mc-vpn", "revoke", NAME], check=False)
    print(
        f"UI add {NAME}: answer in {add_s:.1f} s, handshake after {connected_s:.1f} s;"
        f" revoked: no answer to {sent} bytes of handshakes; helper exposure"
        f" {score.group(1) if score else '?'} on the Pi"
    )
