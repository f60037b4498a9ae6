"""VPN peers over HTTP: the real root helper (scripts/mc-vpn-helper) on a
temporary socket, running the real mc-vpn against a private state directory."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.context import AppContext
from app.security.principal import Scope
from app.vpn.helper import NAME_PATTERN
from tests.support.api import ADMIN_PASSWORD, TokenFactory, assert_error_shape, bearer, login
from tests.support.vpn import HELPER, MC_VPN, VpnState, make_state, need_vpn_tools, running_helper

URL = "/api/vpn/peers"


@pytest.fixture
def vpn_state(tmp_path: Path) -> VpnState:
    need_vpn_tools()
    return make_state(tmp_path / "vpn")


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    return {
        "vpn_helper_socket": tmp_path / "helper.sock",
        "vpn_status_path": tmp_path / "peers.json",
    }


@pytest.fixture
def helper(vpn_state: VpnState, tmp_path: Path) -> Iterator[Path]:
    with running_helper(vpn_state, tmp_path / "helper.sock") as path:
        yield path


async def session(client: httpx.AsyncClient, user: str) -> dict[str, str]:
    return {"X-CSRF-Token": (await login(client, user)).json()["csrf_token"]}


async def test_add_shows_the_config_once_and_keeps_no_private_key(
    client: httpx.AsyncClient, ctx: AppContext, admin_user: str, helper: Path, vpn_state: VpnState
) -> None:
    csrf = await session(client, admin_user)
    added = await client.post(URL, json={"name": "phone", "password": ADMIN_PASSWORD}, headers=csrf)
    assert added.status_code == 201, added.text
    assert added.headers["cache-control"] == "no-store"
    peer = added.json()
    assert peer["name"] == "phone" and peer["address"] == "10.8.0.2"
    private_key = re.search(r"PrivateKey = (\S+)", peer["config"])
    assert private_key, peer["config"]
    assert peer["qr_svg"].startswith("<svg") and "<script" not in peer["qr_svg"]
    # the key is in that answer only: not on the Pi, the database, audit, events
    assert not (vpn_state.peers / "phone" / "private.key").exists()
    assert (vpn_state.peers / "phone" / "public.key").exists()
    assert not (vpn_state.clients / "phone.conf").exists()
    dump = "\n".join(ctx.db.path.parent.joinpath(n).read_bytes().hex() for n in ["mc.db"])
    assert private_key.group(1).encode().hex() not in dump
    for table in ("audit_log", "events", "notifications"):
        rows = await ctx.db.fetch_all(f"SELECT * FROM {table}")
        assert private_key.group(1) not in json.dumps([tuple(r) for r in rows])
    shown = vpn_state.mc_vpn("show", "phone")
    assert shown.returncode != 0 and "handed over once" in shown.stderr
    # listed live through the helper
    listed = (await client.get(URL, headers=csrf)).json()
    assert listed["source"] == "helper"
    assert [(p["name"], p["address"]) for p in listed["report"]["status"]["peers"]] == [
        ("phone", "10.8.0.2")
    ]
    # audited, and a security notification
    audit = await ctx.db.fetch_all(
        "SELECT action, target, outcome FROM audit_log WHERE action LIKE 'vpn.%' ORDER BY id"
    )
    assert [tuple(r) for r in audit] == [("vpn.peer_add", "vpn-peer:phone", "ok")]
    alerts = await ctx.db.fetch_all("SELECT category, title FROM notifications")
    assert ("security", "VPN peer added: phone") in [tuple(r) for r in alerts]


async def test_add_needs_the_password_again_and_a_session(
    client: httpx.AsyncClient,
    ctx: AppContext,
    admin_user: str,
    helper: Path,
    vpn_state: VpnState,
    make_token: TokenFactory,
) -> None:
    csrf = await session(client, admin_user)
    wrong = await client.post(URL, json={"name": "phone", "password": "not it"}, headers=csrf)
    assert_error_shape(wrong, wrong.status_code, "wrong_password")
    assert wrong.status_code in (401, 422)  # app/auth/step_up.py decides which
    missing = await client.post(URL, json={"name": "phone"}, headers=csrf)
    assert_error_shape(missing, 422)
    assert "password" in missing.text
    token = bearer(await make_token(Scope.ADMIN))
    by_token = await client.post(
        URL, json={"name": "phone", "password": ADMIN_PASSWORD}, headers=token
    )
    assert_error_shape(by_token, 403, "step_up_needs_session")
    assert not (vpn_state.peers / "phone").exists()


async def test_bad_names_are_refused_before_the_helper(
    client: httpx.AsyncClient, admin_user: str, helper: Path, vpn_state: VpnState
) -> None:
    csrf = await session(client, admin_user)
    for name in ("Phone", "-x", "a" * 32, "a b", "../x", "x\nlist", ""):
        refused = await client.post(
            URL, json={"name": name, "password": ADMIN_PASSWORD}, headers=csrf
        )
        assert_error_shape(refused, 422)
        assert refused.json()["error"]["details"][0]["loc"][-1] == "name", refused.text
    assert list(vpn_state.peers.glob("*")) == [] if vpn_state.peers.exists() else True
    again = await client.post(URL, json={"name": "phone", "password": ADMIN_PASSWORD}, headers=csrf)
    assert again.status_code == 201
    twice = await client.post(URL, json={"name": "phone", "password": ADMIN_PASSWORD}, headers=csrf)
    assert_error_shape(twice, 409, "vpn_exists")
    assert twice.json()["error"]["details"][0]["loc"] == ["body", "name"]


async def test_revoke_removes_the_peer_audited(
    client: httpx.AsyncClient, ctx: AppContext, admin_user: str, helper: Path, vpn_state: VpnState
) -> None:
    csrf = await session(client, admin_user)
    await client.post(URL, json={"name": "laptop", "password": ADMIN_PASSWORD}, headers=csrf)
    revoked = await client.delete(f"{URL}/laptop", headers=csrf)
    assert revoked.status_code == 200, revoked.text
    assert not (vpn_state.peers / "laptop").exists()
    assert_error_shape(await client.delete(f"{URL}/laptop", headers=csrf), 404, "vpn_not_found")
    assert_error_shape(await client.delete(f"{URL}/Lap..top", headers=csrf), 422)
    alerts = [tuple(r) for r in await ctx.db.fetch_all("SELECT category, title FROM notifications")]
    assert ("security", "VPN peer revoked: laptop") in alerts
    audit = await ctx.db.fetch_all(
        "SELECT action, outcome FROM audit_log WHERE action LIKE 'vpn.%' ORDER BY id"
    )
    assert [tuple(r) for r in audit] == [
        ("vpn.peer_add", "ok"),
        ("vpn.peer_revoke", "ok"),
        ("vpn.peer_revoke", "failed"),
    ]


async def test_peers_need_admin(
    client: httpx.AsyncClient, make_token: TokenFactory, helper: Path
) -> None:
    operate = bearer(await make_token(Scope.OPERATE))
    assert_error_shape(await client.get(URL, headers=operate), 403, "insufficient_scope")
    assert_error_shape(await client.delete(f"{URL}/x", headers=operate), 403, "insufficient_scope")


async def test_without_the_helper_the_list_comes_from_the_status_file(
    client: httpx.AsyncClient, ctx: AppContext, admin_headers: dict[str, str], admin_user: str
) -> None:
    ctx.settings.vpn_status_path.write_text(
        json.dumps(
            {
                "interface": "wg0",
                "up": True,
                "generated_at": 1,
                "peers": [{"name": "old", "address": "10.8.0.9"}],
            }
        )
    )
    listed = (await client.get(URL, headers=admin_headers)).json()
    assert listed["source"] == "status_file" and "not reachable" in listed["helper_problem"]
    assert listed["report"]["status"]["peers"][0]["name"] == "old"
    csrf = await session(client, admin_user)
    down = await client.post(URL, json={"name": "phone", "password": ADMIN_PASSWORD}, headers=csrf)
    assert_error_shape(down, 503, "vpn_helper_unavailable")


def _ask(path: Path, request: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(path))
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    answer: dict[str, Any] = json.loads(data)
    return answer


def test_the_helper_has_a_fixed_command_set(helper: Path, vpn_state: VpnState) -> None:
    for request in (
        b"show phone\n",
        b"add\n",
        b"add Phone\n",
        b"add phone --ip 10.8.0.9\n",
        b"add ../etc\n",
        b"revoke -x\n",
        b"list\x00\n",
        b"a" * 100 + b"\n",
        b"list",  # no newline: not a request
    ):
        try:
            answer = _ask(helper, request)
        except ConnectionResetError:  # closed with the rest of an oversized line unread
            assert len(request) > 64, request
            continue
        assert answer["ok"] is False and answer["error"] in ("bad_request", "bad_name"), request
    assert not vpn_state.peers.exists() or list(vpn_state.peers.iterdir()) == []
    assert _ask(helper, b"list\n")["ok"] is True


def test_the_helper_refuses_another_uid_and_another_unit(
    vpn_state: VpnState, tmp_path: Path
) -> None:
    stranger = ("--allow-uid", "4242", "--any-unit")
    with running_helper(vpn_state, tmp_path / "uid.sock", stranger) as path:
        answer = _ask(path, b"add phone\n")
    assert answer["error"] == "forbidden" and "may not use this helper" in answer["message"]
    # the worker and its agents run as the API's user: the caller's unit counts too
    elsewhere = ("--allow-uid", str(os.getuid()), "--allow-unit", "mission-control.service")
    with running_helper(vpn_state, tmp_path / "unit.sock", elsewhere) as path:
        answer = _ask(path, b"add phone\n")
    assert answer["error"] == "forbidden" and "not in mission-control.service" in answer["message"]
    assert not (vpn_state.peers / "phone").exists()
    # neither check may be left out: the helper does not start without both
    for half in (["--any-unit"], ["--allow-uid", "0"]):
        started = subprocess.run(
            [sys.executable, "-I", str(HELPER), *half], capture_output=True, check=False
        )
        assert started.returncode == 2 and b"required" in started.stderr
    # under systemd the connection is fd 0; anything else is refused
    piped = subprocess.run(
        [sys.executable, "-I", str(HELPER), *stranger], stdin=subprocess.DEVNULL, check=False
    )
    assert piped.returncode != 0


def test_the_three_name_rules_are_one(vpn_state: VpnState) -> None:
    """mc-vpn's check_name, the helper's NAME and the API's NAME_PATTERN agree."""
    helper_rule = re.search(r'NAME = re.compile\(r"([^"]+)"\)', HELPER.read_text())
    shell_rule = re.search(r"=~ (\^\[a-z0-9\]\S+\$) \]\]", MC_VPN.read_text())
    assert helper_rule and shell_rule
    assert f"^{helper_rule.group(1)}$" == NAME_PATTERN == shell_rule.group(1)
