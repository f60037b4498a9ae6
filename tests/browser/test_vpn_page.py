"""The VPN peers page in Chromium: add a device after typing the password again,
its configuration and QR code shown once, then only the public part; revoke.

The root helper is the real program (scripts/mc-vpn-helper) on a socket in the
test's directory, running as the test's user, and it runs the real mc-vpn
against a private state directory (tests/support/vpn.py); nothing is mocked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import Console, Server
from tests.support.ui import Stored, confirm, log_in, shot
from tests.support.vpn import VpnState, make_state, need_vpn_tools, running_helper

UI_WORKER = False


def UI_ENV(root: Path) -> dict[str, str]:
    return {
        "MC_VPN_HELPER_SOCKET": str(root / "helper.sock"),
        "MC_VPN_STATUS_PATH": str(root / "peers.json"),
    }


@pytest.fixture(scope="module")
def vpn(server: Server) -> Iterator[VpnState]:
    need_vpn_tools()
    state = make_state(server.root / "vpn")
    with running_helper(state, server.root / "helper.sock"):
        yield state


def test_add_a_device_shown_once_then_revoke(
    browser: Any, server: Server, console: Console, vpn: VpnState
) -> None:
    stored = Stored(server.root / "mc.db")
    page = browser.new_page()
    log_in(page, "alice")
    page.get_by_role("link", name="VPN", exact=True).click()
    page.wait_for_url("**/ui/vpn")
    assert page.locator("#helper-problem").count() == 0
    page.get_by_text("No peers yet").wait_for()

    # a wrong password: said in the form, nothing made
    page.get_by_label("Device name").fill("phone")
    page.get_by_label("Your password").fill("not my password")
    # (app/auth/step_up.py answers a wrong password with 422 naming the field)
    with (
        console.expect_refusal("/api/vpn/peers", 422),
        console.expect_refusal("/api/vpn/peers", 401),
    ):
        page.get_by_role("button", name="Add device").click()
        page.locator("#peer-form").get_by_text("password is wrong").first.wait_for()
    assert not (vpn.peers / "phone").exists()

    page.get_by_label("Your password").fill("correct horse battery staple")
    page.get_by_role("button", name="Add device").click()
    once = page.locator("#peer-once")
    once.wait_for(state="visible")
    config = page.locator("#peer-config").text_content() or ""
    key = re.search(r"PrivateKey = (\S+)", config)
    assert key and "Address = 10.8.0.2/32" in config, config
    assert once.locator("[data-field=address]").text_content() == "10.8.0.2"
    qr = page.locator("#peer-qr svg")
    assert qr.count() == 1 and qr.get_attribute("role") == "img"
    assert (qr.bounding_box() or {}).get("width", 0) > 100
    assert page.locator("#peer-password").input_value() == ""  # the form was cleared
    shot(page, "vpn-peer-shown-once")

    # only the public part remains: not on the Pi, not in the database or audit
    assert not (vpn.peers / "phone" / "private.key").exists()
    assert key.group(1).encode() not in (server.root / "mc.db").read_bytes()
    assert stored.count("audit_log", "action = 'vpn.peer_add' AND outcome = 'ok'") == 1
    assert stored.count("notifications", "title = 'VPN peer added: phone'") == 1

    page.reload()
    assert page.locator("#peer-once").is_hidden()
    assert key.group(1) not in page.content()
    row = page.locator("#peer-phone")
    assert "10.8.0.2" in (row.text_content() or "") and "never" in (row.text_content() or "")

    row.get_by_role("button", name="Revoke").click()
    confirm(page)
    page.wait_for_load_state("load")
    page.get_by_text("No peers yet").wait_for()
    assert not (vpn.peers / "phone").exists()
    assert stored.count("audit_log", "action = 'vpn.peer_revoke' AND outcome = 'ok'") == 1
    console.assert_clean()
    page.close()


def test_the_page_is_for_admins(browser: Any, server: Server, console: Console) -> None:
    page = browser.new_page()
    log_in(page, "bob")
    assert page.get_by_role("link", name="VPN", exact=True).count() == 0
    with console.expect_refusal("/ui/vpn", 403):
        page.goto("/ui/vpn")
    assert page.locator("#peer-form").count() == 0
    page.close()
