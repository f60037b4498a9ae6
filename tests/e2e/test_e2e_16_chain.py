"""The audit's attack chain replayed on the stand-in Pi, and the owner's channel
hears of each step (docs/security-model.md, "chain"; docs/notifications.md).

The chain is tests/support/chain.py's, the in-process replay's
(tests/hostile/test_attack_chain_replay.py): **mute** the owner, **rewrite** a
shell agent's identity, **plant** memory, **plant a rule** that starts it, **run a
shell** on it. Here it is sent from the laptop through the tunnel and nginx to
the provisioned Pi, against a shell agent the admin made in a browser session,
from three principals:

* an ``operate`` token;
* an ``operate`` browser session (a user made on the Pi with ``missionctl``;
  the session cookie and the CSRF header the web UI's script sends);
* a lone ``admin`` token (one stolen credential).

Each step is refused (403/422) or held for a second human: the rule reaching a
shell agent is stored disabled and pending, the shell task waits for approval
with no run, and the admin token cannot release either (403). What the step
aims at is read back through the API as the admin (the notification policy, the
agent's identity and memory, the live rules, the agent's released tasks and its
runs): unchanged. Each step raises a security notification naming the
principal, and every notification the step raised (the API's list, category
``security``) reaches the receiver on the outside host (the Pi's one channel,
``json://<outside>:8099/mc-e2e-alerts``, sent by the notifier) within 10 s,
matched on its title and body. One line per step and notification: the answer,
the notification and its delay.

Throttles (docs/security-model.md F40, app/core/alerts.py): a refusal of an
authenticated request alerts at most once per actor, client and action every 5
minutes; each principal here is its own actor and tries each action once, so no
step's alert is held back. Only refusals *without* a credential are aggregated
(one alert per client and window): no step here sends one.

The fourth principal of the in-process replay, an agent run with a shell, is
skipped: the Pi's only runnable profile is the bundled demo agent, which runs no
commands (the confined run is the in-process replay's; the worker's sandbox on
the Pi is check 6's)."""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.chain import STEPS, request_for
from tests.support.e2e import (
    MISSIONCTL,
    Receiver,
    Testbed,
    https_client,
    login,
    pi_token,
    receiver,
    wait_for,
)

#: from a step's answer to its notification on the owner's channel (issue text: "within 10 s")
ALERT_BOUND_S = 10.0

Send = Callable[[str, str, dict[str, Any]], httpx.Response]


@dataclass
class Chain:
    tb: Testbed
    shell: int
    tokens: dict[str, str]
    user: tuple[str, str]
    alerts: Receiver
    #: the first admin's browser session (cookie and CSRF header): one login, the
    #: login zone allows 10 a minute
    admin: tuple[httpx.Cookies, dict[str, str]]


@pytest.fixture(scope="module")
def chain(testbed: Testbed) -> Iterator[Chain]:
    tb = testbed
    tag = secrets.token_hex(3)
    # listening before the setup's own alerts (the shell agent's creation): alerts
    # sent to no one count towards the channel's breaker, which would then hold
    # the chain's first ones back for its cool-down
    with receiver(tb) as alerts:
        tokens = {
            "operate": pi_token(tb, f"chain-operate-{tag}", "operate"),
            "admin": pi_token(tb, f"chain-admin-{tag}", "admin"),
        }
        user = (f"chain-bob-{tag}", secrets.token_urlsafe(18))
        create = ["runuser", "-u", "mission-control", "--", MISSIONCTL, "user", "create"]
        made = tb.run(
            [*create, user[0], "--role", "operate", "--password-stdin"], input=user[1] + "\n"
        )
        assert "created" in made.stdout, made.stdout
        with https_client(tb) as client:
            admin = login(client, tb)
            created = client.post(
                "/api/agents",
                headers=admin,
                json={
                    "name": f"chain-shelly-{tag}",
                    "role": "ops",
                    "model": "claude-sonnet",
                    "identity": "You are careful.",
                    "shell_access": True,
                    "allowed_tools": ["shell"],
                },
            )
            assert created.status_code == 201, created.text
            assert created.json()["capability"]["shell"] is True, created.json()
            shell, cookies = created.json()["id"], httpx.Cookies(client.cookies)
            (made_alert,) = [
                n for n in security_rows(client, 0) if f"'chain-shelly-{tag}'" in n["title"]
            ]
            wait_for(
                "the shell agent's creation on the receiver (the channel works)",
                functools.partial(alerts.the_one, made_alert["title"], made_alert["body"]),
                60,
            )
        yield Chain(tb, shell, tokens, user, alerts, (cookies, admin))


def targets(client: httpx.Client, shell: int) -> dict[str, Any]:
    """What the chain aims at, read through the API as the admin."""

    def get(path: str, **params: Any) -> Any:
        answer = client.get(path, params=params)
        assert answer.status_code == 200, (path, answer.text)
        return answer.json()

    policy = get("/api/policies/notifications")
    identity = get(f"/api/agents/{shell}/identity")
    tasks = get("/api/tasks", agent_id=shell, limit=200)["items"]
    runs = get("/api/conversations", limit=200)["items"]
    return {
        "policy": (policy["version"], policy["policy"]["muted_categories"]),
        "identity": (identity["version"], identity["text"]),
        "memory": get(f"/api/agents/{shell}/memory")["total"],
        "live rules": get("/api/rules", enabled="true")["total"],
        "released shell tasks": [
            t["id"] for t in tasks if t["approval"] != "pending" or t["active_conversation_id"]
        ],
        "runs of the agent": [r["id"] for r in runs if r["agent_id"] == shell],
    }


def security_rows(client: httpx.Client, after: int) -> list[dict[str, Any]]:
    """The security notifications newer than id ``after``, oldest first."""
    answer = client.get("/api/notifications", params={"category": "security", "limit": 100})
    assert answer.status_code == 200, answer.text
    return sorted((n for n in answer.json()["items"] if n["id"] > after), key=lambda n: n["id"])


def newest_id(client: httpx.Client) -> int:
    items = client.get("/api/notifications", params={"category": "security", "limit": 1}).json()
    return max((n["id"] for n in items["items"]), default=0)


def replay(chain: Chain, principal: str, actor: str, send: Send) -> None:
    """The whole chain from one principal: each step refused or held, nothing
    changed, and each of its security notifications on the outside receiver."""
    with https_client(chain.tb) as admin:
        admin.cookies.update(chain.admin[0])
        for step in STEPS:
            before, untouched = newest_id(admin), targets(admin, chain.shell)
            method, path, body = request_for(step, {"shelly": chain.shell})
            answer = send(method, path, body)
            answered_at = time.time()
            outcome = str(answer.status_code)
            if step == "rule" and answer.status_code == 201:
                held = answer.json()  # a rule reaching a shell agent waits for a second human
                assert held["enabled"] is False and held["approval"] == "pending", held
                own = send("POST", f"/api/rules/{held['id']}/approve", {"version": held["version"]})
                assert own.status_code in (403, 422), (principal, "own rule approved", own.text)
                outcome = f"201 held, own approval {own.status_code}"
            elif step == "shell" and answer.status_code == 201:
                held = answer.json()  # a shell no person decided waits for a person
                assert held["approval"] == "pending", held
                assert held["active_conversation_id"] is None, held
                own = send("POST", f"/api/tasks/{held['id']}/approve", {"version": held["version"]})
                assert own.status_code in (403, 422), (principal, "own task approved", own.text)
                outcome = f"201 held, own approval {own.status_code}"
            else:
                assert answer.status_code in (403, 422), (principal, step, answer.text)
            assert targets(admin, chain.shell) == untouched, (principal, step, "changed")

            rows = wait_for(
                f"a security notification for {principal}'s {step}",
                functools.partial(security_rows, admin, before),
                5,
            )
            assert any(actor in row["body"] for row in rows), (principal, step, actor, rows)
            for row in rows:
                got = wait_for(
                    f"{row['title']!r} on the outside receiver",
                    functools.partial(chain.alerts.the_one, row["title"], row["body"]),
                    ALERT_BOUND_S,
                )
                delay = got[0]["t"] - answered_at
                print(f"{principal} {step}: {outcome}; {row['title']!r} reached in {delay:.2f} s")
                assert delay < ALERT_BOUND_S, (principal, step, row["title"], delay)


def token_sender(client: httpx.Client, token: str) -> Send:
    headers = {"Authorization": f"Bearer {token}"}
    return lambda method, path, body: client.request(method, path, json=body, headers=headers)


def token_actor(token: str) -> str:
    """``mc_<public id>_<secret>``: the audit names the token by its public id."""
    return f"token:{token.split('_')[1]}"


def test_the_chain_from_an_operate_token(chain: Chain) -> None:
    token = chain.tokens["operate"]
    with https_client(chain.tb) as client:
        replay(chain, "operate token", token_actor(token), token_sender(client, token))


def test_the_chain_from_an_operate_browser_session(chain: Chain) -> None:
    name, password = chain.user
    with https_client(chain.tb) as client:
        session = client.post("/api/auth/login", json={"username": name, "password": password})
        assert session.status_code == 200, session.text
        assert session.json()["role"] == "operate", session.json()
        csrf = {"X-CSRF-Token": session.json()["csrf_token"]}
        replay(
            chain,
            "operate session",
            f"user:{name}",
            lambda method, path, body: client.request(method, path, json=body, headers=csrf),
        )


def test_the_chain_from_a_lone_admin_token(chain: Chain) -> None:
    token = chain.tokens["admin"]
    with https_client(chain.tb) as client:
        replay(chain, "admin token", token_actor(token), token_sender(client, token))


def test_the_chain_from_an_agent_run_with_a_shell(testbed: Testbed) -> None:
    pytest.skip(
        "the Pi's only runnable profile is the bundled demo agent, which runs no commands;"
        " an agent run with a shell is replayed in the real sandbox in-process"
        " (tests/hostile/test_attack_chain_replay.py::test_chain_replay_agent_run_with_a_shell)"
    )
