"""Alerts that leave the Pi (docs/notifications.md): the notifier unit, and only
it, reads the channels file and reaches the channel's address; a security alert
(an identity change refused to an operate token over the tunnel) reaches a
receiver on the outside host within 10 s; with the receiver down the channel is
retried and its breaker opens (seen in the API and the UI), and once it is back
every alert arrives; "Send test" from the UI's API is sent by the notifier.

The harness gives the Pis one channel, ``json://<outside>:8099/mc-e2e-alerts``
(scripts/e2e-pi.sh), with quick retries and breaker (2 s, 3 failures, 10 s)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tests.support.e2e import (
    MISSIONCTL,
    RECEIVER_PATH,
    RECEIVER_PORT,
    Testbed,
    https_client,
    login,
    pi_token,
    receiver,
    wait_for,
)

UNIT = "mission-control-notify.service"
PORT = RECEIVER_PORT
SECRET_PATH = RECEIVER_PATH
CGROUP = f"/sys/fs/cgroup/system.slice/{UNIT}/cgroup.procs"

# Run inside the notifier's cgroup (its IPAddressAllow/Deny apply): connect to
# each address given, print the outcome and the time it took.
PROBE = """
import json, socket, sys, time
out = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    started = time.monotonic()
    try:
        socket.create_connection((host, int(port)), timeout=2).close(); what = "connected"
    except OSError as exc:
        what = type(exc).__name__ + ":" + str(exc.errno)
    out[target] = [what, round((time.monotonic() - started) * 1000, 1)]
print(json.dumps(out))
"""


def refused_identity_change(client: httpx.Client, token: str, agent_id: int) -> float:
    """An identity change through the tunnel with an operate token: refused (403),
    a security alert. The moment the refusal came back."""
    answer = client.put(
        f"/api/agents/{agent_id}/identity",
        headers={"Authorization": f"Bearer {token}"},
        json={"text": "# Who you are\nobey me", "reason": "e2e", "expected_version": 0},
    )
    assert answer.status_code == 403, answer.text
    return time.time()


def channel(client: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    view = client.get("/api/notifications/channels", headers=headers).json()
    (found,) = view["channels"]
    assert isinstance(found, dict)
    return found


def test_the_notifier_alone_reads_the_channels_and_reaches_only_their_address(
    testbed: Testbed,
) -> None:
    tb = testbed
    assert tb.is_active(UNIT) == "active"
    assert tb.unit(UNIT, "Type") == "notify" and tb.seconds(UNIT, "WatchdogUSec") == 30
    owner = tb.run(
        [
            "stat",
            "-c",
            "%U:%G %a",
            "/etc/mission-control-notify",
            "/etc/mission-control-notify/notify.toml",
        ]
    ).stdout
    assert owner.split() == [
        "root:mission-control-notify",
        "750",
        "root:mission-control-notify",
        "640",
    ]
    # the API's user (without the notifier's group) cannot read it
    peek = tb.run(
        [
            "runuser",
            "-u",
            "mission-control",
            "--",
            "cat",
            "/etc/mission-control-notify/notify.toml",
        ],
        check=False,
    )
    assert peek.returncode != 0 and SECRET_PATH not in peek.stdout
    for unit in ("mission-control.service", "mission-control-worker.service"):
        assert SECRET_PATH not in tb.unit(unit, "Environment")
    assert SECRET_PATH not in tb.read("/etc/mission-control/env")
    allowed = tb.unit(UNIT, "IPAddressAllow").split()
    assert f"{tb['OUTSIDE_ADDR']}/32" in allowed, allowed
    assert sorted(tb.unit(UNIT, "IPAddressDeny").split()) in (["any"], ["0.0.0.0/0", "::/0"])
    checked = tb.run([MISSIONCTL, "notify", "check"]).stdout
    assert checked.strip() == f"receiver: JSON via {tb['OUTSIDE_ADDR']} (plain text)"

    # measured inside the notifier's own cgroup, and from the Pi's root shell for
    # comparison: its channel's address connects; every other address's packets
    # are dropped (the connect times out), where outside the unit the Pi's own
    # nginx connects and the routers refuse at once
    targets = (
        f" {tb['OUTSIDE_ADDR']}:{PORT} {tb['WAN_ROUTER']}:80 {tb['LAN_ROUTER']}:80 {tb.tunnel}:443"
    )
    with receiver(tb):
        inside = json.loads(
            tb.sh(f"echo $$ > {CGROUP} && exec python3 -c '{PROBE}' {targets}").stdout
        )
        outside = json.loads(tb.sh(f"exec python3 -c '{PROBE}' {targets}").stdout)
    print(f"egress from the notifier's cgroup: {inside}")
    print(f"the same from the Pi's root shell: {outside}")
    assert inside[f"{tb['OUTSIDE_ADDR']}:{PORT}"][0] == "connected"
    assert outside[f"{tb.tunnel}:443"][0] == "connected"
    for target, (what, _) in inside.items():
        if not target.startswith(tb["OUTSIDE_ADDR"]):
            assert what in ("TimeoutError:None", "PermissionError:1"), (target, what)
            assert outside[target][0] != what, (target, outside[target])
    journal = tb.run(["journalctl", "-u", UNIT, "--no-pager", "-o", "cat"]).stdout
    assert "notifier started" in journal and SECRET_PATH not in journal


def test_a_refused_identity_change_reaches_the_outside_receiver_and_the_breaker_shows(
    testbed: Testbed,
) -> None:
    tb = testbed
    tokens = [pi_token(tb, f"notify-e2e-{i}", "operate") for i in range(4)]
    with https_client(tb) as client:
        admin = login(client, tb)
        with receiver(tb) as server:
            refused_at = refused_identity_change(client, tokens[0], 4240)
            got = wait_for(
                "the alert on the receiver", lambda: server.about("/api/agents/4240/"), 10
            )
            latency = got[0]["t"] - refused_at
            print(f"refused identity change -> outside receiver: {latency:.2f} s")
            assert latency < 10
            assert got[0]["title"] == "Refused: PUT /api/agents/{agent_id}/identity"
            assert got[0]["type"] == "failure" and got[0]["path"] == f"/{SECRET_PATH}"

        # the receiver is down: each alert is tried, fails, and the breaker opens
        down_at = time.monotonic()
        for i, token in enumerate(tokens[1:], start=1):
            refused_identity_change(client, token, 4240 + i)
        state = wait_for(
            "the breaker to open",
            lambda: (c := channel(client, admin))["breaker_state"] == "open" and c,
            30,
        )
        print(
            f"breaker open after {time.monotonic() - down_at:.1f} s:"
            f" {state['consecutive_failures']} failures, last error {state['last_error']!r}"
        )
        assert state["consecutive_failures"] >= 3
        assert state["last_error"] == "the service could not be reached"
        pending = client.get(
            "/api/notifications", params={"category": "security"}, headers=admin
        ).json()["items"]
        retried = [n for n in pending if n["webhook_state"] == "pending"]
        assert retried and max(n["webhook_attempts"] for n in retried) >= 1
        page = client.get("/ui/notifications/channels")
        assert page.status_code == 200
        assert 'data-breaker="open"' in page.text and "paused after" in page.text
        assert SECRET_PATH not in page.text

        # back up: after the cool-down a trial goes through, then the rest
        with receiver(tb) as server:
            up_at = time.monotonic()
            wait_for(
                "every alert after the receiver came back",
                lambda: all(server.about(f"/api/agents/{4240 + i}/") for i in (1, 2, 3)),
                90,
            )
            print(f"all three delivered {time.monotonic() - up_at:.1f} s after the receiver")
            assert channel(client, admin)["breaker_state"] == "closed"

            # "Send test": the API queues, the notifier sends, the page shows it
            queued = client.post("/api/notifications/channels/receiver/test", headers=admin)
            assert queued.status_code == 202, queued.text
            test_id = queued.json()["id"]
            done = wait_for(
                "the test's outcome",
                lambda: (
                    (t := client.get(f"/api/notifications/tests/{test_id}", headers=admin).json())[
                        "state"
                    ]
                    == "delivered"
                    and t
                ),
                15,
            )
            assert done["outcome"] == "delivered"
            assert [g["title"] for g in server.got if "test" in g["title"]] == [
                "Mission Control: test notification"
            ]
