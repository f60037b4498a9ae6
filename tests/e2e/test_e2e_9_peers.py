"""Check 9: ``mc-vpn add phone`` on the Pi: the new peer connects at once (no
playbook run, no restart); ``mc-vpn revoke phone``: it can no longer handshake,
while the laptop stays connected."""

from __future__ import annotations

import time

import httpx

from tests.support.e2e import Testbed, client_conf, https_client, wait_for, wg_peer


def _laptop_ok(tb: Testbed) -> bool:
    with https_client(tb) as client:
        return client.get("/healthz").status_code == 200


def test_added_peer_connects_at_once_and_a_revoked_one_cannot(testbed: Testbed) -> None:
    tb = testbed
    ns = tb["NS_OUTSIDE"]  # a phone on mobile data
    tb.run(["mc-vpn", "revoke", "phone"], check=False)  # a leftover of an earlier attempt
    added = tb.run(["mc-vpn", "add", "phone"]).stdout
    assert "added: phone 10.8.0." in added, added
    phone_pub = tb.read("/etc/wireguard/mission-control/peers/phone/public.key").strip()
    assert phone_pub in tb.run(["wg", "show", "wg0", "peers"]).stdout, (
        f"mc-vpn add did not load the phone into the running wg0: {added}"
    )
    phone_conf = client_conf(tb, "phone")  # what the phone imported (QR code)
    try:
        with wg_peer(tb, ns, f"{tb['IFTAG']}-phn", phone_conf) as phone:
            start = time.monotonic()
            wait_for("the new phone's handshake", lambda: phone.kick() or phone.handshake(), 10)
            connected_s = time.monotonic() - start
            with https_client(tb, ns) as client:
                assert client.get("/healthz").status_code == 200

            revoked = tb.run(["mc-vpn", "revoke", "phone"]).stdout
            assert "revoked: phone" in revoked, revoked
            assert phone_pub not in tb.run(["wg", "show", "wg0", "peers"]).stdout, (
                f"the revoked phone is still a peer of the running wg0: {revoked}"
            )
            # its current session is dead at once ...
            with https_client(tb, ns) as client:
                try:
                    client.get("/healthz", timeout=2.0)
                except httpx.HTTPError:
                    pass
                else:
                    raise AssertionError("the revoked phone still reached the Pi")
        # ... and a fresh start cannot handshake any more
        with wg_peer(tb, ns, f"{tb['IFTAG']}-phn", phone_conf) as again:
            deadline = time.monotonic() + 7
            while time.monotonic() < deadline:
                again.kick()
            received, sent = again.transfer()
            assert again.handshake() == 0, "the revoked phone completed a handshake"
            assert sent > 0 and received == 0, f"revoked phone: {sent} bytes out, {received} in"
    finally:
        tb.run(["mc-vpn", "revoke", "phone"], check=False)
    assert _laptop_ok(tb), "the laptop lost the tunnel while the phone came and went"
    print(
        f"mc-vpn add phone: handshake after {connected_s:.1f} s; revoked: no answer to "
        f"{sent} bytes of handshakes; the laptop stayed connected"
    )
